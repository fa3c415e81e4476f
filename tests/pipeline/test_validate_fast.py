"""failed_checks quarantines exactly the rows pandera's own validation rejects, for the
reasons its checks name.

Every schema of schemas/clean.py (and a few others with element-wise checks and checks
that keep nulls) is fed random frames mixing good and bad values; pandera's public lazy
report (``SchemaErrors.failure_cases``) says which (row, check) pairs fail, and each must be
one reason of that row ("<check error> (got <value>)", or "<column> is missing").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera import Check
from pandera.errors import SchemaErrors

from pipeline.quality import reason_rule
from pipeline.validate import ContractError, failed_checks
from schemas import clean

SCHEMAS = {
    name: schema for name, schema in vars(clean).items() if isinstance(schema, pa.DataFrameSchema)
}

# Schemas outside clean.py for what the fast path must also get right: an int column whose
# failing values are reported beside floats, element-wise checks, a check that keeps nulls,
# several checks on one column.
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
}


# --- the oracle: pandera's own report ------------------------------------------------------


def pandera_failures(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> dict[Any, list[str]]:
    """{row -> the rules pandera reports it breaks}, each named as a quarantine reason's rule."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "index"]].itertuples(index=False)
        failures: dict[Any, list[str]] = {}
        for column, check, idx in cases:
            if pd.isna(idx):
                raise ContractError(check) from None
            if check == "not_nullable":
                rule = f"{column} is missing"
            else:  # a check's error text, prefixed with its column unless it starts with it
                rule = check if check.startswith(column) else f"{column}: {check}"
            failures.setdefault(idx, []).append(rule)
        return {idx: sorted(rules) for idx, rules in failures.items()}
    return {}


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


def assert_same(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> tuple[str, Any]:
    """failed_checks and pandera agree: the same rows break the same rules, or both find a
    contract error; rows come in frame order."""
    try:
        expected = pandera_failures(frame, schema)
    except ContractError:
        with pytest.raises(ContractError):
            failed_checks(frame, schema)
        return "contract", None
    got = failed_checks(frame, schema)
    assert {idx: sorted(map(reason_rule, texts)) for idx, texts in got.items()} == expected
    positions = [frame.index.get_loc(idx) for idx in got]
    if frame.index.is_unique:
        assert positions == sorted(positions)
    return "reasons", got


ALL_SCHEMAS = {**SCHEMAS, **EXTRA_SCHEMAS}


# --- tests -----------------------------------------------------------------------------------


def test_every_clean_schema_is_covered() -> None:
    assert {"facilities", "vendors", "products", "stock_items", "purchase_orders"} <= set(SCHEMAS)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [0, 1, 40, 600])
@pytest.mark.parametrize("name", sorted(ALL_SCHEMAS))
def test_rows_and_rules_are_pandera_s(name: str, n: int, seed: int) -> None:
    schema = ALL_SCHEMAS[name]
    rng = np.random.default_rng(seed)
    frame = random_frame(schema, rng, n)
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
    with pytest.raises(ContractError, match="no longer matches the warehouse contract"):
        failed_checks(missing, schema)


def test_wrong_dtype_is_a_contract_error() -> None:
    frame = random_frame(clean.products, np.random.default_rng(2), 30)
    frame["cost"] = frame["cost"].astype(str)
    with pytest.raises(ContractError, match="float64"):
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
