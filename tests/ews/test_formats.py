"""The one Danish number and date format (ews.formats) and the Danish names of terms."""

from __future__ import annotations

from datetime import date

import pytest

from dashboards.charts import fmt_number, fmt_pct
from ews.formats import date_da, number_da
from ews.terms import term_name_da


@pytest.mark.parametrize(("value", "decimals", "strip", "shown"), [
    (1234.5, 1, False, "1.234,5"), (1234567, 0, False, "1.234.567"), (1.5, 2, True, "1,5"),
    (2.0, 1, True, "2"), (-0.0001, 1, True, "0"), (-1234.25, 2, False, "-1.234,25"),
])
def test_numbers_have_a_thousands_point_and_a_decimal_comma(value: float, decimals: int, strip: bool,
                                                            shown: str) -> None:
    assert number_da(value, decimals, strip_zeros=strip) == shown


def test_the_app_shows_numbers_and_dates_as_the_files_do() -> None:
    assert fmt_number(12345.678, 1) == number_da(12345.678, 1) == "12.345,7"
    assert fmt_pct(0.4567, 1) == "45,7 %"
    assert date_da(date(2025, 11, 15)) == date_da("2025-11-15") == "15-11-2025"
    assert date_da(None) == "–"


def test_terms_are_named_as_danish_users_name_them() -> None:
    assert term_name_da("2025/26-H1") == "efterår 2025"
    assert term_name_da("2025/26-H2") == "forår 2026"
    assert term_name_da("ikke en termin") == "ikke en termin"


def test_coded_values_are_shown_by_their_label_on_the_pupil_page() -> None:
    from dashboards.views import feature_value_text

    assert feature_value_text("support_active_level", 3.0, "niveau") == "specialskole"  # not "3"
    assert feature_value_text("support_max_level", 1.0, "niveau") == "støttetimer"
    assert feature_value_text("grade", 8, "niveau") == "8. klasse"
