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


def test_a_cpr_number_must_be_a_day_of_the_real_calendar():
    # issue 17, item 5: 31 February passed the check and became an "unknown pupil"
    assert normalise_cpr("310214-4001") is None
    assert normalise_cpr("310414-4001") is None  # 31 April
    assert normalise_cpr("290215-4001") is None  # 2015 is not a leap year
    assert normalise_cpr("290216-4001") == "2902164001"  # 2016 is
    # the century decides the leap year: 29-02-00 is valid in 2000 (digit 4), not in 1900 (digit 0)
    assert normalise_cpr("290200-4001") == "2902004001"
    assert normalise_cpr("290200-0001") is None
    assert normalise_cpr("310114-4001") == "3101144001"


def test_every_seventh_digit_gives_its_century():
    assert [birth_year_from_cpr(f"010120{d}001") for d in range(10)] == [
        1920, 1920, 1920, 1920, 2020, 2020, 2020, 2020, 2020, 2020]
    assert [birth_year_from_cpr(f"010160{d}001") for d in range(10)] == [
        1960, 1960, 1960, 1960, 1960, 1860, 1860, 1860, 1860, 1960]
    assert [birth_year_from_cpr(f"010140{d}001") for d in (4, 5, 9)] == [1940, 2040, 1940]


def test_mask_cpr_catches_cpr_numbers_in_every_dress_and_spares_pseudonyms():
    from ews.pseudonym import CPR_IN_TEXT, mask_cpr

    for text in ("0102031234", "010203-1234", "010203 1234", "010203/1234", "Hansen0102031234"):
        assert mask_cpr(f"x {text} y") == f"x {text[:-10 - (text[-5] in '-/ ')]}<cpr> y", text
        assert CPR_IN_TEXT.search(text)
    assert mask_cpr("12345678901") == "12345678901"  # eleven digits: not a CPR number
    pseudonym = pseudonymise("0102031234", b"k")
    assert mask_cpr(pseudonym) == pseudonym
