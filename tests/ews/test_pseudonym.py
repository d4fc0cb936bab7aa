import pandas as pd

from ews.pseudonym import CPR_LIKE, birth_year_from_cpr, normalise_cpr, pseudonymise, pseudonymise_series


def test_same_cpr_same_pseudonym_with_or_without_dash():
    assert pseudonymise(normalise_cpr("010110-4123"), b"k") == pseudonymise(normalise_cpr("0101104123"), b"k")


def test_key_changes_the_pseudonym():
    digits = normalise_cpr("010110-4123")
    assert pseudonymise(digits, b"a") != pseudonymise(digits, b"b")


def test_pseudonym_never_looks_like_a_cpr_number():
    ids = [pseudonymise(f"0101{n:06d}", b"k") for n in range(2000)]
    assert not any(CPR_LIKE.search(i) for i in ids)


def test_invalid_values_are_not_pseudonymised():
    assert normalise_cpr("320110-1234") is None
    assert normalise_cpr("01011-41234") is None
    frame = pseudonymise_series(pd.Series(["010110-4123", "nonsense", None]), b"k")
    assert frame["pupil_id"].notna().tolist() == [True, False, False]


def test_birth_year_uses_the_seventh_digit_century_rule():
    assert birth_year_from_cpr("0101104123") == 2010
    assert birth_year_from_cpr("0101851234") == 1985
    assert birth_year_from_cpr("0101109123") == 2010
