from service_kit.accounts import is_account_number, luhn_check_digit, new_account_number, region_of


def test_new_account_numbers_carry_their_region_and_a_valid_check_digit() -> None:
    number = new_account_number("330000")
    assert len(number) == 16
    assert region_of(number) == "330000"
    assert is_account_number(number)


def test_every_single_digit_change_breaks_the_check_digit() -> None:
    number = new_account_number("110000")
    for position in range(16):
        for digit in "0123456789":
            if digit != number[position]:
                assert not is_account_number(number[:position] + digit + number[position + 1 :])


def test_luhn_matches_the_textbook_example() -> None:
    assert luhn_check_digit("7992739871") == "3"


def test_malformed_account_numbers_are_refused() -> None:
    assert not is_account_number("")
    assert not is_account_number("33000012345678X0")
    assert not is_account_number("３３０００００１２３４５６７８９")
