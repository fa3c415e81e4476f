"""A value parses the same whatever its neighbours in the column.

The parsers of ``pipeline.coerce`` sort a column by kind first, and a column whose present
values are all of one kind (all strings, all integers, all floats: the usual column) skips
the per-value sorting. These properties compare every value of a random column, uniform or
mixed, with the same value parsed alone, so the two ways of sorting must agree on the
parsed value and on whether it is bad.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from hostile_values import json_scalars
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import coerce

#: NumPy scalars, as a typed source may hand them over (at the edges of their ranges).
numpy_numbers = st.one_of(
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.floats(allow_nan=True, width=32).map(np.float32),
)

#: Uniform columns (each takes the shortcut when nothing else is mixed in), and mixed ones.
columns = st.one_of(
    st.lists(st.one_of(st.none(), st.integers()), max_size=8),
    st.lists(st.one_of(st.none(), numpy_numbers), max_size=8),
    st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), max_size=8),
    st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=8),
    st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(["2024-05-06T07:08:09", " 2024-05-06 07:08 ", "2024-02-30T00:00:00"]),
        ),
        max_size=8,
    ),
    st.lists(st.one_of(json_scalars, st.just(math.nan), st.just(pd.NA)), max_size=8),
)


def _cells(parsed: tuple[pd.Series, pd.Series]) -> list[tuple[Any, bool]]:
    values, bad = parsed
    return [
        (None if pd.isna(v) else v, bool(b))
        for v, b in zip(values.tolist(), bad.tolist(), strict=True)
    ]


def _alone_and_together(parse: Any, values: list[Any]) -> None:
    column = pd.Series(np.array(values, dtype=object) if values else [], dtype=object)
    together = _cells(parse(column))
    alone = [_cells(parse(pd.Series([v], dtype=object)))[0] for v in values]
    assert together == alone


@settings(max_examples=200, deadline=None)
@given(columns)
def test_text_of_a_value_does_not_depend_on_its_neighbours(values: list[Any]) -> None:
    _alone_and_together(coerce.to_text, values)


@settings(max_examples=200, deadline=None)
@given(columns)
def test_number_of_a_value_does_not_depend_on_its_neighbours(values: list[Any]) -> None:
    _alone_and_together(coerce.to_number, values)


@settings(max_examples=200, deadline=None)
@given(columns, st.sampled_from(["UTC", "America/New_York"]))
def test_timestamp_of_a_value_does_not_depend_on_its_neighbours(values: list[Any], tz: str) -> None:
    _alone_and_together(lambda column: coerce.to_timestamp(column, tz), values)


def test_uniform_columns_keep_their_missing_values_and_refusals() -> None:
    """The shortcut's own cases: NaN and NA are missing, inf is bad, an integer too large
    for an exact float is still a number, a lone surrogate is bad text."""
    numbers, bad = coerce.to_number(pd.Series([1.5, math.nan, math.inf, None], dtype=object))
    assert numbers.tolist()[:1] == [1.5] and numbers.isna().tolist() == [False, True, False, True]
    assert bad.tolist() == [False, False, True, False]
    numbers, bad = coerce.to_number(pd.Series([2**60, 3], dtype=object))
    assert numbers.tolist() == [float(2**60), 3.0] and not bad.any()
    # A NumPy uint64 past int64 is that number, never wrapped to a small negative one.
    numbers, bad = coerce.to_number(pd.Series([np.uint64(2**64 - 1)], dtype=object))
    assert numbers.tolist() == [float(2**64 - 1)] and not bad.any()
    numbers, bad = coerce.to_number(pd.Series([np.longdouble(1.5), np.float16(2.5)], dtype=object))
    assert numbers.tolist() == [1.5, 2.5] and not bad.any()
    texts, bad = coerce.to_text(pd.Series([" a ", math.nan, pd.NA, "b\ud800"], dtype=object))
    assert texts.tolist()[0] == "a" and texts.isna().tolist() == [False, True, True, True]
    assert bad.tolist() == [False, False, False, True]
    texts, bad = coerce.to_text(pd.Series([7, 2**70], dtype=object))
    assert texts.tolist() == ["7", str(2**70)] and not bad.any()
