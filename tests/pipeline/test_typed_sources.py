"""Typed sources (an app database) send Decimals and aware timestamps, not JSON text.

The same parsers take them, with the same rules: a value is loaded as it is, or its row is
reported, never turned into NULL.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipeline import coerce


@given(st.lists(st.decimals(allow_nan=False, allow_infinity=False, places=4), max_size=30))
def test_decimals_are_numbers_as_they_are(values: list[Decimal]) -> None:
    numbers, bad = coerce.to_number(pd.Series(values, dtype=object))

    for value, number, refused in zip(values, numbers, bad, strict=True):
        as_float = float(value)
        if math.isfinite(as_float):
            assert not refused and number == as_float
        else:  # a Decimal beyond a float's range
            assert refused


def test_a_decimal_is_not_text() -> None:
    _, bad = coerce.to_text(pd.Series([Decimal("1.5"), "1.5"], dtype=object))

    assert bad.tolist() == [True, False]


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.datetimes(
                min_value=datetime(1900, 1, 2),
                max_value=datetime(2999, 12, 30),
                timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
            ),
        ),
        max_size=30,
    )
)
def test_aware_timestamps_are_taken_as_instants(values: list[datetime | None]) -> None:
    column = pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[us, UTC]")

    parsed, bad = coerce.to_timestamp(column, "America/New_York")

    assert not bad.any()
    assert str(parsed.dtype) == "datetime64[us, UTC]"
    for value, instant in zip(values, parsed, strict=True):
        if value is None:
            assert pd.isna(instant)
        else:
            assert instant.to_pydatetime() == value.astimezone(UTC)


def test_an_aware_timestamp_outside_the_years_is_reported() -> None:
    column = pd.Series(
        pd.to_datetime(["1850-06-01T00:00:00Z", "2024-06-01T12:00:00+02:00"], utc=True)
    )

    parsed, bad = coerce.to_timestamp(column, "UTC")

    assert bad.tolist() == [True, False]
    assert pd.isna(parsed.iloc[0])
    assert parsed.iloc[1] == pd.Timestamp("2024-06-01T10:00:00Z")
