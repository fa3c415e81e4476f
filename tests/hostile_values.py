"""Hostile JSON values for property-based tests, and the documented rules they must obey.

Shared by the transform-level tests (``tests/pipeline/test_hostile_records.py``) and the
end-to-end ones against the sandbox (``tests/e2e/test_pipeline_hostile_records.py``):
Hypothesis strategies for any JSON value (plus the values that broke real pipelines), and
an oracle, written independently of ``pipeline.coerce``, of what a loaded column must hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from pipeline.entities import EntitySpec
from pipeline.mapping import Number, Text, Timestamp

MISSING = object()  # the key is absent from the record

SPECIAL = [
    "",
    "   ",
    "--",
    "N/A",
    "\x00",
    "a\x00b",
    "\ud800",
    "NaN",
    "Infinity",
    "-inf",
    "1,200",
    "1e400",
    "0x10",
    "2024-05-06T07:08:09",
    "2024-05-06T07:08:09Z",
    "2024-05-06T07:08:09+05:30",
    "2024-05-06T07:08:09.123-0800",
    "2024-13-45T00:00:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "11/28/2024",
    "'; DROP TABLE products; --",
    "<script>alert(1)</script>",
    "\u202eevil\u202c",
    "\u200f\u05e9\u05dc\u05d5\u05dd",
    "\U0001f9ea emoji",
    "x" * 5000,  # a very long name
    10**30,
    -(2**63),
    2**64,
    1e308,
    -1e308,
    math.inf,
    -math.inf,
    0.1 + 0.2,
    12.34567,
    True,
    False,
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(SPECIAL),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def nested_values(base: Any) -> st.SearchStrategy[Any]:
    """Lists like ``base``'s, with one entry or one entry's field made hostile."""
    if not (isinstance(base, list) and base and isinstance(base[0], dict)):
        return json_values
    entry = base[0]
    return st.one_of(
        json_values,
        st.builds(
            lambda name, value: [{**entry, name: value}],
            st.sampled_from(sorted(entry)),
            json_values,
        ),
        st.builds(lambda value: [entry, value], json_values),
    )


def hostile_field(
    base: dict[str, Any], extra: tuple[str, ...] = ()
) -> st.SearchStrategy[tuple[str, Any]]:
    """(field, hostile value) for a record like ``base`` (``extra``: fields it may lack)."""
    fields = sorted({*base, *extra})
    return st.sampled_from(fields).flatmap(
        lambda name: st.tuples(
            st.just(name), st.one_of(st.just(MISSING), nested_values(base.get(name)))
        )
    )


def with_value(base: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """``base`` with field ``name`` set to ``value`` (removed for ``MISSING``)."""
    record = dict(base)
    if value is MISSING:
        record.pop(name, None)
    else:
        record[name] = value
    return record


def frame_of(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Raw rows as the connector builds them: object columns, missing keys as None."""
    names = list(dict.fromkeys(k for r in records for k in r))
    return pd.DataFrame(
        {n: pd.Series([r.get(n) for r in records], dtype=object) for n in names},
        index=pd.RangeIndex(len(records)),
    )


# --- the documented rules, written out independently ------------------------------------------


def expected_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip()


def expected_number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        return (
            None
            if text in ("", "--", "-", "\u2014", "N/A", "n/a")
            else float(text.replace(",", ""))
        )
    return float(value)


def expected_timestamp(value: Any) -> datetime | None:
    if value is None or (
        isinstance(value, str) and value.strip() in ("", "--", "-", "\u2014", "N/A", "n/a")
    ):
        return None
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


EXPECTED: dict[type, Callable[[Any], Any]] = {
    Text: expected_text,
    Number: expected_number,
    Timestamp: expected_timestamp,
}


def assert_loaded_as_source(spec: EntitySpec, record: dict[str, Any], row: pd.Series) -> None:
    """Every directly mapped column of a loaded row holds what the source field says."""
    for target, rule in spec.mapping.items():
        if target not in row.index or type(rule) not in EXPECTED:
            continue
        got = row[target]
        want = EXPECTED[type(rule)](record.get(rule.source))
        if want is None:
            assert pd.isna(got), (target, record.get(rule.source), got)
        elif isinstance(want, datetime):
            assert got.to_pydatetime() == want, (target, record.get(rule.source), got)
        elif isinstance(want, float):
            assert float(got) == want, (target, record.get(rule.source), got)
        else:
            assert got == want, (target, record.get(rule.source), got)
