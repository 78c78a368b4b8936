import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.api import format_duration, parse_duration
from tenure.api.duration import MAX_DURATION, PATTERN


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


@given(st.integers(min_value=0, max_value=int(MAX_DURATION.total_seconds())))
def test_format_then_parse_is_identity(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.integers(0, 99_999), st.integers(0, 999_999), st.integers(0, 99_999_999), st.integers(0, 999_999_999))
def test_every_accepted_value_is_written_back_in_a_form_the_schema_accepts(d: int, h: int, m: int, s: int) -> None:
    """What a policy may say, Tenure can render into status: the accepted and the rendered range agree."""
    text = f"{d}d{h}h{m}m{s}s"
    try:
        value = parse_duration(text)
    except ValueError as error:
        assert "maximum" in str(error)
        assert timedelta(days=d, hours=h, minutes=m, seconds=s) > MAX_DURATION
        return
    rendered = format_duration(value)
    assert re.fullmatch(PATTERN, rendered), rendered
    assert parse_duration(rendered) == value


def test_a_value_whose_canonical_form_would_not_fit_the_pattern_is_refused() -> None:
    # 99999d24h matched the pattern, but Tenure rendered it as 100000d, which the pattern refuses (6 digits).
    with pytest.raises(ValueError, match="above the 36500d maximum"):
        parse_duration("99999d24h")
    assert format_duration(parse_duration("36500d")) == "36500d"


def test_pattern_is_anchored_so_the_api_server_matches_whole_values() -> None:
    assert PATTERN.startswith("^") and PATTERN.endswith("$")
