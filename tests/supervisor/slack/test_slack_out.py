"""Splitting long messages for Slack, and reading Retry-After."""

import pytest

from supervisor.slack.web_api import _retry_after, split_message


def test_a_short_message_is_one_part() -> None:
    assert split_message("*bold* and `code`", limit=100) == ["*bold* and `code`"]


def test_a_long_message_splits_on_line_breaks_first() -> None:
    assert split_message("aaaa bbbb\ncccc dddd", limit=16) == ["aaaa bbbb", "cccc dddd"]


def test_a_line_without_breaks_splits_on_words_then_hard() -> None:
    assert split_message("aaaa bbbb cccc", limit=12) == ["aaaa", "bbbb cccc"]
    assert split_message("x" * 20, limit=12) == ["x" * 8, "x" * 12]


def test_a_cut_inside_a_code_block_closes_and_reopens_the_fence() -> None:
    text = "```\n" + "\n".join(f"line {n}" for n in range(6)) + "\n```"
    parts = split_message(text, limit=30)
    assert all(part.count("```") == 2 and len(part) <= 30 for part in parts)
    assert "\n".join(p.removeprefix("```\n").removesuffix("\n```") for p in parts).split() == [
        word for n in range(6) for word in ("line", str(n))
    ]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({}, 1.0),
        ({"Retry-After": "soon"}, 1.0),
        ({"Retry-After": ["2"]}, 2.0),
    ],
)
def test_retry_after_reads_integer_and_fractional_seconds(headers: dict, seconds: float) -> None:
    assert _retry_after(headers) == seconds
