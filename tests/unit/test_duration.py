from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.api import format_duration, parse_duration
from tenure.api.duration import PATTERN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("36h", timedelta(hours=36)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90s", timedelta(seconds=90)),
        ("0d", timedelta(0)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parses_the_documented_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "30", "1h1d", "30days", "1.5d", "-1d", " 1d", "1w", "1d 2h", "P30D"])
def test_rejects_everything_else_with_the_syntax_in_the_message(text: str) -> None:
    with pytest.raises(ValueError, match="<n>d, <n>h, <n>m, <n>s"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=99_999 * 86400))
def test_format_then_parse_is_identity(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_pattern_is_anchored_so_the_api_server_matches_whole_values() -> None:
    assert PATTERN.startswith("^") and PATTERN.endswith("$")
