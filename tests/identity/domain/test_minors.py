"""Age from the ID number's birth date (China Standard Time days): who is under 14, and the 29 February birthday."""

from __future__ import annotations

from datetime import date

from identity_svc.domain.real_name import birth_date, birthday_at_age, is_under
from tests.identity.identity_helpers import with_check_digit

BORN_2012_06_01 = with_check_digit("33010620120601123")
BORN_2012_02_29 = with_check_digit("33010620120229123")


def test_birth_date_is_read_from_characters_seven_to_fourteen() -> None:
    assert birth_date(BORN_2012_06_01) == date(2012, 6, 1)


def test_under_14_until_the_day_of_the_14th_birthday() -> None:
    assert is_under(BORN_2012_06_01, 14, date(2026, 5, 31))
    assert not is_under(BORN_2012_06_01, 14, date(2026, 6, 1))


def test_a_29_february_child_turns_14_on_1_march_in_a_common_year() -> None:
    assert birthday_at_age(date(2012, 2, 29), 14) == date(2026, 3, 1)
    assert is_under(BORN_2012_02_29, 14, date(2026, 2, 28))
    assert not is_under(BORN_2012_02_29, 14, date(2026, 3, 1))
    assert birthday_at_age(date(2012, 2, 29), 16) == date(2028, 2, 29)
