"""The vectorised mapping paths give exactly what the straightforward per-value code gave.

The reference implementations below are copies of the code the fast paths replaced: the
per-value ``_main_supplier`` / ``_reorder`` helpers run row by row and parsed the way
``Derived`` used to, and the parsers ``to_text`` / ``to_number`` / ``to_timestamp`` before
their fast paths. Random mixed inputs (clean values, display strings, junk, missing values,
odd types) must give equal columns (values and dtypes) and equal "unparseable" masks.
"""

from __future__ import annotations

import decimal
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline import coerce
from pipeline.entities import ENTITIES
from pipeline.mapping import Derived, TransformContext, apply_mapping

# --- reference: the per-value code the fast paths replaced --------------------------------

EMPTY_PLACEHOLDERS = frozenset({"", "--", "-", "N/A", "n/a"})
_PLAIN_NUMBER = frozenset({int, float, type(None)})


def ref_main_supplier(value: Any, ctx: TransformContext) -> str | None:
    if not isinstance(value, list):
        return None
    first = None
    for supplier in value:
        if isinstance(supplier, dict):
            if first is None:
                first = supplier
            pref = supplier.get("supplierPrefOrderId")
            if pref and "MAIN" in str(pref).upper():
                return ctx.party_id(supplier.get("supplierPartyUrl"))
    return ctx.party_id(first.get("supplierPartyUrl")) if first else None


def ref_reorder(field_name: str) -> Callable[[Any, TransformContext], Any]:
    def pick(value: Any, ctx: TransformContext) -> Any:
        if not isinstance(value, list) or not value:
            return None
        guidelines = [g for g in value if isinstance(g, dict)]
        overall = [g for g in guidelines if not g.get("facilityUrl")]
        numbers = [n for g in overall or guidelines if (n := g.get(field_name)) is not None]
        if not numbers:
            return None
        if len(numbers) == 1:
            return numbers[0]
        try:
            return sum(float(str(n).replace(",", "")) for n in numbers)
        except ValueError:
            return numbers[0]

    return pick


def ref_blank_as_na(series: pd.Series) -> pd.Series:
    as_text = series.astype("str").str.strip()
    return series.where(~as_text.isin(EMPTY_PLACEHOLDERS) & series.notna())


def ref_to_text(series: pd.Series) -> pd.Series:
    out = series.astype("str").str.strip()
    return out.where(series.notna())


def ref_parse_numbers(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    present = ref_blank_as_na(series)
    if pd.api.types.is_numeric_dtype(present.dtype):
        numbers = present.astype("float64")
    else:
        cleaned = present.astype("str").str.replace(",", "", regex=False).str.strip()
        numbers = pd.to_numeric(cleaned.where(present.notna()), errors="coerce").astype("float64")
    bad = present.notna() & numbers.isna()
    return numbers, bad


def ref_to_number(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64"), pd.Series(False, index=series.index)
    if series.dtype == object and len(series):
        values = series.to_numpy()
        plain = np.fromiter((type(v) in _PLAIN_NUMBER for v in values), bool, len(values))
        if plain.any():
            try:
                numbers = series.where(plain).astype("float64")
            except (OverflowError, TypeError, ValueError):
                return ref_parse_numbers(series)
            bad = pd.Series(False, index=series.index)
            if not plain.all():
                other = ~plain
                parsed, other_bad = ref_parse_numbers(series[other])
                numbers[other] = parsed
                bad[other] = other_bad
            return numbers, bad
    return ref_parse_numbers(series)


def ref_to_timestamp(series: pd.Series, tz: str) -> tuple[pd.Series, pd.Series]:
    as_text = series.astype("str")
    present = ~as_text.str.strip().isin(EMPTY_PLACEHOLDERS) & series.notna()
    parsed = pd.to_datetime(
        as_text.str.slice(0, 19).where(present), format="%Y-%m-%dT%H:%M:%S", errors="coerce"
    )
    if tz != "UTC":
        later = np.zeros(len(parsed), dtype=bool)
        parsed = parsed.dt.tz_localize(tz, ambiguous=later, nonexistent="shift_forward")
        parsed = parsed.dt.tz_convert("UTC")
    else:
        parsed = parsed.dt.tz_localize("UTC")
    bad = present & parsed.isna()
    return parsed, bad


def ref_derived(
    column: pd.Series, func: Callable[[Any, TransformContext], Any], kind: str, ctx: Any
) -> tuple[pd.Series, pd.Series]:
    """The old ``Derived.apply``: func per value, the list inferred, then parsed."""
    values = pd.Series([func(v, ctx) for v in column.tolist()], index=column.index)
    if kind == "number":
        dtype = values.dtype
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        return ref_to_number(values if numeric else values.astype(object))
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype(object)
    return ref_to_text(values), pd.Series(False, index=column.index)


# --- random inputs -----------------------------------------------------------------------

PARTY_IDS = {"/acme/api/partygroup/100": "100", "/acme/api/partygroup/7": " 7 "}
URLS = [
    "/acme/api/partygroup/100",
    "/acme/api/partygroup/7",
    "/acme/api/partygroup/200",
    "/acme/api/partygroup/300/",
    "",
    None,
    12,
    "plain",
]
PREFS = ["10_MAIN", "10_main", "main", "MAINTAIN", "20_ALT", "30_ALT", "", None, 1, True, 0.0]
NUMBERS = [5, 7, 0, -3, 12.5, 0.1, 0.2, 1e16, 2**53 + 1, 2**64, 10**400, -0.0, float("nan")]
NUMBERS += [float("inf"), "1,200", "12x", " 7 ", "--", "", True, False, {"n": 1}, [3]]
FACILITIES = ["/acme/api/facility/1", "/acme/api/facility/2", None, "", 0, "x"]
ODD_ROWS = [None, float("nan"), "text", {"a": 1}, 5, (), ({"reorderPoint": 1},)]
ODD_ITEMS = ["junk", None, 3, ["nested"], ()]


class _Guidelines(list[Any]):
    """A list subclass: never from JSON, but the per-value helpers accept it."""


def _pick(rng: np.random.Generator, options: list[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _supplier(rng: np.random.Generator) -> Any:
    roll = rng.random()
    if roll < 0.05:
        return _pick(rng, ODD_ITEMS)
    item: dict[str, Any] = {}
    if rng.random() < 0.9:
        item["supplierPartyUrl"] = _pick(rng, URLS)
    if rng.random() < 0.9:
        item["supplierPrefOrderId"] = _pick(rng, PREFS)
    if rng.random() < 0.02:
        item["supplierPrefOrderId"] = ["MAIN"]  # unhashable
    if rng.random() < 0.02:
        item["supplierPartyUrl"] = {"url": 1}  # unhashable
    return OrderedDict(item) if rng.random() < 0.01 else item  # a dict subclass


def _guideline(rng: np.random.Generator, plain: bool) -> Any:
    if not plain and rng.random() < 0.05:
        return _pick(rng, ODD_ITEMS)
    item: dict[str, Any] = {}
    if rng.random() < 0.85:
        item["facilityUrl"] = _pick(rng, FACILITIES)
    for name in ("reorderPoint", "reorderQuantity"):
        roll = rng.random()
        if roll < 0.1:
            continue  # key missing
        if roll < 0.2:
            item[name] = None
        elif plain:
            item[name] = int(rng.integers(0, 500)) if rng.random() < 0.7 else float(rng.random())
        else:
            item[name] = _pick(rng, NUMBERS)
    return OrderedDict(item) if not plain and rng.random() < 0.01 else item


def _lists(rng: np.random.Generator, n: int, make: Callable[[], Any], odd: float) -> list[Any]:
    rows: list[Any] = []
    for _ in range(n):
        if rng.random() < odd:
            rows.append(_pick(rng, ODD_ROWS))
        elif rng.random() < odd / 10:
            rows.append(_Guidelines(make() for _ in range(int(rng.integers(0, 4)))))
        else:
            rows.append([make() for _ in range(int(rng.integers(0, 5)))])
    return rows


def _products(rng: np.random.Generator, n: int, odd: float, plain: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "supplierList": pd.Series(_lists(rng, n, lambda: _supplier(rng), odd), dtype=object),
            "reorderGuidelineList": pd.Series(
                _lists(rng, n, lambda: _guideline(rng, plain), odd), dtype=object
            ),
        }
    )
    # Not a RangeIndex, as after selecting rows of a chunk.
    frame.index = pd.RangeIndex(n) * 3 + 5
    return frame


DERIVED = {
    "primary_vendor_party_id": (ref_main_supplier, "text"),
    "reorder_point": (ref_reorder("reorderPoint"), "number"),
    "reorder_quantity": (ref_reorder("reorderQuantity"), "number"),
}


def _assert_same(actual: tuple[pd.Series, pd.Series], expected: tuple[pd.Series, pd.Series]):
    pd.testing.assert_series_equal(actual[0], expected[0], check_exact=True)
    pd.testing.assert_series_equal(actual[1], expected[1], check_exact=True)


# --- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "odd", "plain"),
    [(1, 0.0, True), (2, 0.0, False), (3, 0.1, False), (4, 0.3, False), (5, 0.02, True)],
)
def test_nested_list_rules_match_the_per_value_reference(seed: int, odd: float, plain: bool):
    rng = np.random.default_rng(seed)
    raw = _products(rng, 3000, odd, plain)
    mapping = ENTITIES["products"].mapping
    for tz in ("UTC", "America/Chicago"):
        ctx = TransformContext(tz=tz, party_ids=PARTY_IDS)
        lists: dict = {}  # shared between the rules, as apply_mapping does
        for target, (func, kind) in DERIVED.items():
            rule = mapping[target]
            assert isinstance(rule, Derived)
            expected = ref_derived(raw[rule.source], func, kind, ctx)
            _assert_same(rule.apply(raw, ctx, lists), expected)
            _assert_same(rule.apply(raw, ctx), expected)  # without a shared ListColumn


def test_nested_list_rules_report_the_same_problems_as_the_per_value_code() -> None:
    raw = _products(np.random.default_rng(11), 2000, 0.1, False)
    ctx = TransformContext(party_ids=PARTY_IDS)
    mapping = {target: ENTITIES["products"].mapping[target] for target in DERIVED}
    reference = {
        target: Derived(rule.source, func, kind)
        for (target, rule), (func, kind) in zip(mapping.items(), DERIVED.values(), strict=True)
    }
    frame, problems = apply_mapping(raw, mapping, ctx)
    expected_frame, expected_problems = apply_mapping(raw, reference, ctx)
    pd.testing.assert_frame_equal(frame, expected_frame, check_exact=True)
    assert problems == expected_problems
    assert problems  # junk like "12x" is reported
    assert any("'12x'" in text for texts in problems.values() for text in texts)


def _at(facility: str | None, point: Any) -> dict[str, Any]:
    return {"facilityUrl": facility, "reorderPoint": point}


@pytest.mark.parametrize(
    ("value", "point"),
    [
        pytest.param([_at(None, 3), {"reorderPoint": 4}], 7.0, id="overall-summed"),
        pytest.param([_at("/f/1", 3), _at("", 9)], 9.0, id="overall-wins"),
        pytest.param([_at("/f/1", 3), _at("/f/2", 4)], 7.0, id="facilities-summed"),
        pytest.param([_at("/f/1", "1,200"), _at("/f/2", 1)], 1201.0, id="display-string"),
        pytest.param([{"reorderPoint": "1,200"}], 1200.0, id="display-string-alone"),
        pytest.param([_at(None, 0.1), _at(None, 0.2)], 0.1 + 0.2, id="non-integers"),
        pytest.param([_at(None, -0.0), _at(None, -0.0)], 0.0, id="negative-zeros"),
        pytest.param([], None, id="empty"),
        pytest.param(["junk", None], None, id="no-dicts"),
        pytest.param(None, None, id="not-a-list"),
        pytest.param([{"facilityUrl": "/f/1"}], None, id="no-value"),
    ],
)
def test_reorder_edge_cases(value: Any, point: float | None) -> None:
    raw = pd.DataFrame({"reorderGuidelineList": pd.Series([value, value], dtype=object)})
    rule = ENTITIES["products"].mapping["reorder_point"]
    ctx = TransformContext()
    expected = ref_derived(raw["reorderGuidelineList"], ref_reorder("reorderPoint"), "number", ctx)
    _assert_same(rule.apply(raw, ctx), expected)
    got = rule.apply(raw, ctx)[0].iloc[0]
    assert (pd.isna(got) and point is None) or got == point
    if point == 0.0:
        assert np.signbit(got) == np.signbit(sum([-0.0, -0.0]))


def test_junk_reorder_value_is_reported_by_the_number_parser() -> None:
    raw = pd.DataFrame(
        {"reorderGuidelineList": pd.Series([[{"reorderPoint": "12x"}], [{"reorderPoint": 4}]])}
    )
    frame, problems = apply_mapping(
        raw, {"reorder_point": ENTITIES["products"].mapping["reorder_point"]}, TransformContext()
    )
    assert problems == {
        0: ["reorder_point: [{'reorderPoint': '12x'}] (field reorderGuidelineList) is not a number"]
    }
    assert frame["reorder_point"].tolist()[1] == 4.0


def test_main_supplier_in_any_case_wins_over_the_first_listed() -> None:
    value = [
        {"supplierPartyUrl": "/acme/api/partygroup/200", "supplierPrefOrderId": "20_ALT"},
        {"supplierPartyUrl": "/acme/api/partygroup/100", "supplierPrefOrderId": "10_main"},
    ]
    raw = pd.DataFrame({"supplierList": pd.Series([value, [], None, value[:1]], dtype=object)})
    values, bad = (
        ENTITIES["products"]
        .mapping["primary_vendor_party_id"]
        .apply(raw, TransformContext(party_ids=PARTY_IDS))
    )
    assert values.tolist()[0] == "100"
    assert values.isna().tolist() == [False, True, True, False]
    assert values.tolist()[3] == "200"
    assert not bad.any()


TEXTS = ["  Kelp meal ", "Potting mix", "", "   ", "Café", "\u00a0x\u2003", None, float("nan")]
TEXTS += [pd.NA, pd.NaT, decimal.Decimal("NaN"), 12, 1.5, True, "N/A"]


def _object_series(rng: np.random.Generator, options: list[Any], n: int) -> pd.Series:
    return pd.Series(
        [_pick(rng, options) for _ in range(n)], dtype=object, index=np.arange(n)[::-1]
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_to_text_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for options in (TEXTS, TEXTS[:5], [*TEXTS[:5], None]):
        series = _object_series(rng, options, 500).rename("internalName")
        pd.testing.assert_series_equal(coerce.to_text(series), ref_to_text(series))
    typed = pd.Series(["a ", None, " b"], dtype="str")
    pd.testing.assert_series_equal(coerce.to_text(typed), ref_to_text(typed))


NUMBER_VALUES = [1, 2.5, -3, 0, None, float("nan"), "1,200", " 7 ", "--", " -- ", "-", "N/A"]
NUMBER_VALUES += ["", "n/a", "12x", "abc", True, False, 2**64, 1e12, "1e3", {"a": 1}, [1]]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_to_number_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cases = [
        NUMBER_VALUES,
        [1, 2.5, None],
        [1.5, None, "--"],
        ["--", "", None],
        ["1,200", "12x"],
        [10**400, 1, "--"],
    ]
    for options in cases:
        series = _object_series(rng, options, 400).rename("cost")
        _assert_same(coerce.to_number(series), ref_to_number(series))
    for series in (pd.Series([], dtype=object), pd.Series([1.0, 2.0]), pd.Series(["1,200"])):
        _assert_same(coerce.to_number(series), ref_to_number(series))


def _stamp(rng: np.random.Generator) -> str:
    return (
        f"{int(rng.integers(1990, 2031)):04d}-{int(rng.integers(1, 13)):02d}-"
        f"{int(rng.integers(1, 29)):02d}T{int(rng.integers(0, 24)):02d}:"
        f"{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}"
    )


ODD_STAMPS = [
    None,
    float("nan"),
    "",
    "--",
    "yesterday",
    "2024-02-30T00:00:00",  # no such day
    "2023-02-29T00:00:00",
    "2024-02-29T12:00:00",  # a leap day
    "2016-12-31T23:59:60",  # a leap second
    "2025-13-01T00:00:00",
    "2025-11-02T01:30:00",  # ambiguous in Chicago
    "2025-03-09T02:30:00",  # does not exist in Chicago
    "2025-06-01 12:00:00",
    "2025-06-01t12:00:00",
    "2025-06-01T12:00:00.123456",
    "2025-06-01T12:00:00Z",
    "2025-06-01T12:00:00+05:00",
    " 2025-06-01T12:00:00",
    "2025-6-1T1:2:3",
    "0000-01-01T00:00:00",
    "0001-01-01T00:00:00",
    "\uff12\uff10\uff12\uff15-06-01T12:00:00",  # full-width digits
    "2025-06-01",
    12345,
    b"2025-06-01T12:00:00",
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_to_timestamp_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clean = [_stamp(rng) for _ in range(300)]
    cases = [
        pd.Series(clean, dtype=object),  # the fast path
        pd.Series([*clean[:100], *[None] * 20], dtype=object),  # fast, with missing values
        pd.Series([None, float("nan")], dtype=object),
        pd.Series([], dtype=object),
        pd.Series(clean[:50], dtype="str"),
    ]
    cases += [pd.Series([*clean[:50], odd], dtype=object) for odd in ODD_STAMPS]
    cases.append(_object_series(rng, [*clean[:20], *ODD_STAMPS], 300))
    for tz in ("UTC", "America/Chicago"):
        for series in cases:
            series = series.rename("lastUpdatedDate")
            _assert_same(coerce.to_timestamp(series, tz), ref_to_timestamp(series, tz))
