"""failed_checks' fast path gives exactly what pandera's full lazy report gave.

The reference below is the original implementation (``schema.validate(frame, lazy=True)``
and the reason formatting of its failure cases), kept verbatim: every schema of
schemas/clean.py is fed random frames mixing good and bad values, and the reasons (texts,
per-row order, row order) or the ContractError message must be the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera import Check
from pandera.errors import SchemaErrors

from pipeline.validate import ContractError, _fast_failure_cases, failed_checks
from schemas import clean

SCHEMAS = {
    name: schema for name, schema in vars(clean).items() if isinstance(schema, pa.DataFrameSchema)
}

# Schemas outside clean.py for what the fast path must also get right: an int column whose
# failing values are reported beside floats, element-wise checks, a check that keeps nulls,
# several checks on one column, capped failure cases.
EXTRA_SCHEMAS = {
    "int_beside_float": pa.DataFrameSchema(
        {
            "count": pa.Column(int, Check.in_range(0, 10, error="count out of range")),
            "price": pa.Column(float, Check.ge(0, error="price: negative"), nullable=True),
        }
    ),
    "element_wise_and_keep_nulls": pa.DataFrameSchema(
        {
            "code": pa.Column(
                str,
                [
                    Check(lambda v: v.isupper(), element_wise=True, error="code not upper"),
                    Check.str_length(max_value=3, error="code too long"),
                ],
                nullable=True,
            ),
            "ratio": pa.Column(
                float,
                Check(lambda s: s.fillna(-1) >= 0, ignore_na=False, error="ratio missing or <0"),
                nullable=True,
            ),
        }
    ),
    "capped": pa.DataFrameSchema(
        {"qty": pa.Column(float, Check.le(5, n_failure_cases=2, error="qty above 5"))}
    ),
}


# --- reference: the original implementation ----------------------------------------------


def reference_failed_checks(
    frame: pd.DataFrame, schema: pa.DataFrameSchema
) -> dict[Any, list[str]]:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        return _reference_reasons_by_row(exc.failure_cases, frame)
    return {}


def _reference_reasons_by_row(cases: pd.DataFrame, frame: pd.DataFrame) -> dict[Any, list[str]]:
    reasons: dict[Any, list[str]] = {}
    for column, check, value, idx in cases[["column", "check", "failure_case", "index"]].itertuples(
        index=False
    ):
        if pd.isna(idx):
            raise ContractError(
                f"check {check!r} failed for the whole chunk (column {column!r}, {value!r}): "
                "the mapped data no longer matches the warehouse contract; check the Finale "
                "field names and the entity's mapping in pipeline/entities.py"
            )
        if check == "not_nullable":
            text = f"{column} is missing"
        elif check.startswith(column):
            text = check
        else:
            text = f"{column}: {check}"
        if not pd.isna(value) and check != "not_nullable":
            text += f" (got {value!r})"
        reasons.setdefault(idx, []).append(text)
    if not reasons:
        return reasons
    failing = list(reasons)
    if frame.index.is_unique:
        found = frame.index.get_indexer(failing)
        position = dict(zip(failing, found.clip(min=0).tolist(), strict=True))
    else:
        position = {idx: pos for pos, idx in enumerate(frame.index)}
    return dict(sorted(reasons.items(), key=lambda item: position.get(item[0], 0)))


# --- random frames ---------------------------------------------------------------------------

STRINGS = [
    "A-1",
    "10077",
    "",
    None,
    "PRODUCT_ACTIVE",
    "PRODUCT_INACTIVE",
    "PARTY_ENABLED",
    "ORDER_CREATED",
    "ORDER_CANCELLED",
    "bogus",
    "ABCD",
    "ab",
    "buyer@example.com",
    "not an address",
    "a b@c",
    "x@y@z",
]
FLOATS = [0.0, 1.5, 1e9, -1e9, -0.5, 2e9, -2e9, np.nan, np.inf, -np.inf, 123456.789]
INTS = [0, 3, 10, 11, -1, 1000]


def _column(column: pa.Column, rng: np.random.Generator, n: int) -> pd.Series:
    kind = str(column.dtype)
    if "int" in kind:
        return pd.Series(rng.choice(INTS, n), dtype="int64")
    if "float" in kind:
        return pd.Series(rng.choice(np.array(FLOATS), n), dtype="float64")
    return pd.Series([STRINGS[i] for i in rng.integers(0, len(STRINGS), n)], dtype="str")


def random_frame(schema: pa.DataFrameSchema, rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = pd.DataFrame({name: _column(col, rng, n) for name, col in schema.columns.items()})
    frame["unrelated"] = np.arange(n)  # columns outside the schema are allowed (strict=False)
    return frame


def _index(kind: str, n: int, rng: np.random.Generator) -> pd.Index:
    if kind == "shuffled":
        return pd.Index(rng.permutation(n) * 7 + 3)
    if kind == "labels":
        return pd.Index([f"row-{i}" for i in rng.permutation(n)], dtype="str")
    if kind == "repeated":
        return pd.Index(rng.integers(0, max(n // 3, 1), n))
    return pd.RangeIndex(n)


def outcome(fn: Callable[[], dict[Any, list[str]]]) -> tuple[str, Any]:
    """The reasons as an ordered list, or the ContractError message."""
    try:
        return "reasons", list(fn().items())
    except ContractError as exc:
        return "contract", str(exc)


def assert_same(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> tuple[str, Any]:
    expected = outcome(lambda: reference_failed_checks(frame, schema))
    assert outcome(lambda: failed_checks(frame, schema)) == expected
    return expected


ALL_SCHEMAS = {**SCHEMAS, **EXTRA_SCHEMAS}


# --- tests -----------------------------------------------------------------------------------


def test_every_clean_schema_is_covered() -> None:
    assert {"facilities", "vendors", "products", "stock_items", "purchase_orders"} <= set(SCHEMAS)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [0, 1, 40, 600])
@pytest.mark.parametrize("name", sorted(ALL_SCHEMAS))
def test_fast_path_matches_pandera_report(name: str, n: int, seed: int) -> None:
    schema = ALL_SCHEMAS[name]
    rng = np.random.default_rng(seed)
    frame = random_frame(schema, rng, n)
    # well-typed frames must take the fast path, not just fall back to pandera
    assert _fast_failure_cases(frame, schema) is not None
    kind, reasons = assert_same(frame, schema)
    assert kind == "reasons"
    if n >= 40 and name in SCHEMAS and any(col.checks for col in schema.columns.values()):
        assert reasons, "random frames are meant to contain bad rows"


@pytest.mark.parametrize("index", ["shuffled", "labels", "repeated"])
@pytest.mark.parametrize("name", sorted(ALL_SCHEMAS))
def test_row_labels_and_order(name: str, index: str) -> None:
    schema = ALL_SCHEMAS[name]
    rng = np.random.default_rng(7)
    frame = random_frame(schema, rng, 300)
    frame.index = _index(index, len(frame), rng)
    assert_same(frame, schema)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_coerced_and_mistyped_columns(name: str, seed: int) -> None:
    """Coercible ids given as ints, numbers given as text, strings as objects, ints as floats."""
    schema = SCHEMAS[name]
    rng = np.random.default_rng(seed)
    for column_name, column in schema.columns.items():
        frame = random_frame(schema, rng, 80)
        values = frame[column_name]
        if "float" in str(column.dtype):
            variants = [
                values.astype(object).where(rng.random(80) < 0.8, "12,5"),  # text in numbers
                pd.Series(rng.choice(INTS, 80), dtype="int64"),  # ints where floats belong
                values.astype("Float64"),  # a nullable float
            ]
        else:
            variants = [
                values.astype(object).where(rng.random(80) < 0.7, 42),  # ints among strings
                values.astype(object),  # strings held as objects
                pd.Series(rng.choice(FLOATS, 80)),  # numbers only
            ]
        for variant in variants:
            mistyped = frame.assign(**{column_name: variant})
            assert_same(mistyped, schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_missing_column_is_a_contract_error(name: str) -> None:
    schema = SCHEMAS[name]
    frame = random_frame(schema, np.random.default_rng(1), 30)
    missing = frame.drop(columns=[next(iter(schema.columns))])
    with pytest.raises(ContractError) as fast:
        failed_checks(missing, schema)
    with pytest.raises(ContractError) as reference:
        reference_failed_checks(missing, schema)
    assert str(fast.value) == str(reference.value)


def test_wrong_dtype_is_a_contract_error() -> None:
    frame = random_frame(clean.products, np.random.default_rng(2), 30)
    frame["cost"] = frame["cost"].astype(str)
    kind, message = assert_same(frame, clean.products)
    assert kind == "contract"
    assert "dtype('float64')" in message
    with pytest.raises(ContractError):
        failed_checks(frame, clean.products)


def test_reason_texts_are_the_schema_errors() -> None:
    frame = pd.DataFrame(
        {
            "sku": ["A-1", "", None],
            "finale_url": ["/p/A-1", "/p/2", "/p/3"],
            "name": ["Mix", None, "Kelp"],
            "status": ["PRODUCT_ACTIVE", "GONE", None],
            "cost": [1.0, -2.0, np.nan],
            "reorder_point": [1.0, 2.0, 3e9],
            "reorder_quantity": [np.nan, 1.0, 1.0],
        }
    )
    assert failed_checks(frame, clean.products) == {
        1: [
            "sku must not be blank (got '')",
            "name is missing",
            "status must be one of PRODUCT_ACTIVE, PRODUCT_INACTIVE (got 'GONE')",
            "cost must be between 0 and 1e+09 (got -2.0)",
        ],
        2: ["sku is missing", "reorder_point must be between 0 and 1e+09 (got 3000000000.0)"],
    }
