"""The columnar versions of the nested-list rules give exactly what their per-value
definitions give.

Each ``Derived`` rule with a ``columnar`` version is compared with the same rule run value by
value (its ``func``, the definition), on random mixed inputs (clean values, display strings,
junk, missing values, odd types): equal columns (values and dtypes) and equal problems.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.entities import ENTITIES
from pipeline.mapping import Derived, TransformContext, apply_mapping

# --- reference: the per-value definition of each columnar rule ----------------------------


def per_value(rule: Derived) -> Derived:
    """The same rule without its columnar version: ``func`` per value is the definition."""
    return Derived(rule.source, rule.func, rule.kind)


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


DERIVED = ("primary_vendor_party_id", "reorder_point", "reorder_quantity")


def _assert_same(actual: tuple[pd.Series, dict], expected: tuple[pd.Series, dict]) -> None:
    pd.testing.assert_series_equal(actual[0], expected[0], check_exact=True)
    assert actual[1] == expected[1]


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
        for target in DERIVED:
            rule = mapping[target]
            assert isinstance(rule, Derived)
            expected = per_value(rule).apply(raw, ctx)
            _assert_same(rule.apply(raw, ctx, lists), expected)
            _assert_same(rule.apply(raw, ctx), expected)  # without a shared ListColumn


def test_nested_list_rules_report_the_same_problems_as_the_per_value_code() -> None:
    raw = _products(np.random.default_rng(11), 2000, 0.1, False)
    ctx = TransformContext(party_ids=PARTY_IDS)
    mapping = {target: ENTITIES["products"].mapping[target] for target in DERIVED}
    reference = {target: per_value(rule) for target, rule in mapping.items()}
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
    assert isinstance(rule, Derived)
    _assert_same(rule.apply(raw, ctx), per_value(rule).apply(raw, ctx))
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
        0: [
            "reorder_point (field reorderGuidelineList) is not a finite number "
            "(got [{'reorderPoint': '12x'}])"
        ]
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
    assert bad == {}
