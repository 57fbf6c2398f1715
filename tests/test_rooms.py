"""Room rules (chat/rooms.py): room codes, display names and message texts."""

from __future__ import annotations

import pytest

from chat import rooms, texts
from chat.rooms import RuleBroken, clean_message, clean_name


def refusal(rule, *args) -> str:
    """The text of the RuleBroken that `rule(*args)` raises."""
    with pytest.raises(RuleBroken) as broken:
        rule(*args)
    return str(broken.value)


# Codes ------------------------------------------------------------------------


@pytest.mark.parametrize("length", [3, 4, 6, 10])
def test_new_code_has_the_configured_length_of_uppercase_ascii(length):
    for _ in range(50):
        code = rooms.new_code(length)
        assert len(code) == length
        assert code.isascii() and code.isalpha() and code.isupper()
        assert rooms.is_well_formed_code(code, length)


def test_new_codes_are_drawn_with_secrets(monkeypatch):
    drawn = []

    def choice(alphabet):
        drawn.append(alphabet)
        return "Q"

    monkeypatch.setattr(rooms.secrets, "choice", choice)
    assert rooms.new_code(4) == "QQQQ"
    assert drawn == [rooms.CODE_ALPHABET] * 4


def test_new_codes_vary():
    assert len({rooms.new_code(4) for _ in range(200)}) > 150


@pytest.mark.parametrize(
    ("typed", "code"),
    [(" abcd", "ABCD"), ("abcd\n", "ABCD"), ("\tAbCd  ", "ABCD"), ("ABCD", "ABCD"), ("  ", "")],
)
def test_normalize_code_trims_and_uppercases(typed, code):
    assert rooms.normalize_code(typed) == code


@pytest.mark.parametrize("code", ["ABC", "ABCDE", "abcd", "AB1D", "ÄBCD", "AB D", ""])
def test_malformed_codes_are_not_well_formed(code):
    assert not rooms.is_well_formed_code(code, 4)


# Names ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["", "   ", "\t\n"])
def test_empty_name_is_refused(typed):
    assert refusal(clean_name, typed) == "Please enter a name."


def test_name_longer_than_32_characters_is_refused():
    assert clean_name("x" * 32) == "x" * 32
    message = refusal(clean_name, "x" * 33)
    assert "32" in message and message == texts.NAME_TOO_LONG


def test_name_length_counts_after_trimming():
    assert clean_name("  " + "y" * 32 + "  ") == "y" * 32


@pytest.mark.parametrize(
    "typed",
    [
        "Ann\x00",  # NUL
        "Ann\x1b[31m",  # terminal escape
        "Ann\nBob",  # line break inside a name
        "Ann\x7f",  # DEL
        "\u202eevil",  # right-to-left override
        "An\u200bn",  # zero-width space
        "Ann\ufeff",  # zero-width no-break space
    ],
)
def test_names_with_control_or_invisible_characters_are_refused(typed):
    assert refusal(clean_name, typed) == texts.NAME_UNPRINTABLE


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("Zoë 李", "Zoë 李"),
        ("  Ann  ", "Ann"),
        ("José María", "José María"),
        ("Ωmega-7", "Ωmega-7"),
    ],
)
def test_ordinary_unicode_names_are_accepted_trimmed(typed, name):
    assert clean_name(typed) == name


# Messages ---------------------------------------------------------------------


def test_message_is_trimmed():
    assert clean_message("  hello there \n", 2000) == "hello there"


@pytest.mark.parametrize("typed", ["", "   ", "\n\t \r\n"])
def test_empty_message_is_refused(typed):
    assert refusal(clean_message, typed, 2000) == "Please type a message."


def test_message_length_is_one_to_the_maximum():
    assert clean_message("x", 2000) == "x"
    assert clean_message("x" * 2000, 2000) == "x" * 2000
    assert refusal(clean_message, "x" * 2001, 2000) == "Messages can be at most 2,000 characters."


def test_message_maximum_is_configurable():
    assert clean_message("x" * 10, 10) == "x" * 10
    assert refusal(clean_message, "x" * 11, 10) == "Messages can be at most 10 characters."


def test_message_length_counts_characters_not_bytes():
    assert clean_message("李" * 10, 10) == "李" * 10


def test_line_breaks_are_kept_and_normalized():
    assert clean_message("first\nsecond", 2000) == "first\nsecond"
    assert clean_message("first\r\nsecond", 2000) == "first\nsecond"


@pytest.mark.parametrize("typed", ["bell\x07", "nul\x00", "esc\x1b[2J", "cr\ronly", "\u202eevil"])
def test_messages_with_control_characters_are_refused(typed):
    assert refusal(clean_message, typed, 2000) == texts.MESSAGE_UNPRINTABLE


def test_ordinary_unicode_and_emoji_messages_are_accepted():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # joined with zero-width joiners
    assert clean_message(f"Grüße 李 {family}", 2000) == f"Grüße 李 {family}"
