"""The products' nested-list rules (main supplier, reorder point and quantity) and the one
notion of an empty display value, tested on their behaviour.

The property tests compare whole chunks with the rules as the spec states them, a few lines
each over one record, on random mixes of clean values, display strings, junk and odd types.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.finale.display import is_empty, parse_display_number
from pipeline import coerce
from pipeline.entities import ENTITIES
from pipeline.mapping import TransformContext, apply_mapping, shown

PARTY_IDS = {"/acme/api/partygroup/100": "100"}
CTX = TransformContext(party_ids=PARTY_IDS)
PRODUCTS = ENTITIES["products"].mapping


def _map(target: str, values: list[Any]) -> tuple[list[Any], dict[Any, list[str]]]:
    rule = PRODUCTS[target]
    raw = pd.DataFrame({rule.source: pd.Series(values, dtype=object)})
    raw.index = pd.RangeIndex(len(values)) * 2 + 1  # not a RangeIndex from 0
    frame, problems = apply_mapping(raw, {target: rule}, CTX)
    got = [None if pd.isna(v) else v for v in frame[target].tolist()]
    return got, {(label - 1) // 2: texts for label, texts in problems.items()}


# --- the spec ----------------------------------------------------------------------------------


def spec_main_supplier(value: Any) -> str | None:
    """MAIN (any case) in supplierPrefOrderId wins, else the first supplier; the id ends the URL."""
    suppliers = [s for s in value if isinstance(s, dict)] if isinstance(value, list) else []
    main = [s for s in suppliers if "MAIN" in (s.get("supplierPrefOrderId") or "").upper()]
    chosen = (main or suppliers or [{}])[0].get("supplierPartyUrl")
    return PARTY_IDS.get(chosen, chosen.rsplit("/", 1)[-1]) if chosen else None


def spec_reorder(value: Any, name: str) -> float | None:
    """The account-wide guideline's value if there is one, else the sum over facilities."""
    guidelines = [g for g in value if isinstance(g, dict)] if isinstance(value, list) else []
    chosen = [g for g in guidelines if not g.get("facilityUrl")] or guidelines
    numbers = [parse_display_number(g.get(name)) for g in chosen]
    numbers = [n for n in numbers if n is not None]
    return sum(numbers) if numbers else None


# --- random lists ------------------------------------------------------------------------------

urls = st.sampled_from(["/acme/api/partygroup/100", "/acme/api/partygroup/7", "", None])
prefs = st.sampled_from(["10_MAIN", "main", "20_ALT", "MAINTAIN", "", None])
suppliers = st.fixed_dictionaries(
    {}, optional={"supplierPartyUrl": urls, "supplierPrefOrderId": prefs}
)
numbers = st.one_of(
    st.none(),
    st.integers(-1000, 10**6),
    st.floats(0, 1e6).map(lambda f: round(f, 2)),
    st.sampled_from(["1,200", " 7 ", "--", "\u2014", "", "3.5"]),
)
guidelines = st.fixed_dictionaries(
    {},
    optional={
        "facilityUrl": st.sampled_from(["/acme/api/facility/1", "/acme/api/facility/2", "", None]),
        "reorderPoint": numbers,
        "reorderQuantity": numbers,
    },
)


def lists_of(items: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    row = st.one_of(st.none(), st.lists(st.one_of(items, st.just("junk")), max_size=4))
    return st.lists(row, min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(rows=lists_of(suppliers))
def test_main_supplier_is_the_one_marked_main_else_the_first(rows: list[Any]) -> None:
    got, problems = _map("primary_vendor_party_id", rows)
    assert problems == {}
    assert got == [spec_main_supplier(row) for row in rows]


REORDER_FIELDS = {"reorder_point": "reorderPoint", "reorder_quantity": "reorderQuantity"}


@settings(max_examples=200, deadline=None)
@given(rows=lists_of(guidelines))
def test_reorder_is_the_account_wide_value_else_the_facility_sum(rows: list[Any]) -> None:
    for target, name in REORDER_FIELDS.items():
        got, problems = _map(target, rows)
        assert problems == {}
        expected = [spec_reorder(row, name) for row in rows]
        assert got == [pytest.approx(e) if e is not None else None for e in expected]


# --- examples ----------------------------------------------------------------------------------


def _at(facility: str | None, point: Any) -> dict[str, Any]:
    return {"facilityUrl": facility, "reorderPoint": point}


@pytest.mark.parametrize(
    ("value", "point"),
    [
        pytest.param([_at(None, 3), {"reorderPoint": 4}], 7.0, id="two-account-wide-summed"),
        pytest.param([_at("/f/1", 3), _at("", 9)], 9.0, id="account-wide-wins"),
        pytest.param([_at("/f/1", 3), _at("/f/2", 4)], 7.0, id="facilities-summed"),
        pytest.param([_at("/f/1", "1,200"), _at("/f/2", 1)], 1201.0, id="display-string"),
        pytest.param([_at("/f/1", "--"), _at("/f/2", 1)], 1.0, id="placeholder-is-no-value"),
        pytest.param([], None, id="empty"),
        pytest.param(["junk", None], None, id="no-dicts"),
        pytest.param(None, None, id="not-a-list"),
        pytest.param([{"facilityUrl": "/f/1"}], None, id="no-value"),
    ],
)
def test_reorder_examples(value: Any, point: float | None) -> None:
    got, problems = _map("reorder_point", [value])
    assert (got, problems) == ([point], {})


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([_at(None, "12x")], id="junk-alone"),
        pytest.param([_at("/f/1", 5), _at("/f/2", "12x")], id="junk-beside-a-number"),
        pytest.param([_at(None, True)], id="boolean"),
        pytest.param([_at(None, float("inf"))], id="infinite"),
        pytest.param([_at(None, 1e308), _at(None, 1e308)], id="sum-overflows"),
    ],
)
def test_a_reorder_value_that_is_no_number_is_reported(value: Any) -> None:
    got, problems = _map("reorder_point", [value, [_at(None, 4)]])
    rule = "reorder_point (field reorderGuidelineList) is not a finite number"
    assert problems == {0: [f"{rule} (got {shown(value)})"]}
    assert got[1] == 4.0


def test_a_reorder_value_on_an_unchosen_guideline_is_not_read() -> None:
    got, problems = _map("reorder_point", [[_at(None, 2), _at("/f/1", "12x")]])
    assert (got, problems) == ([2.0], {})


def test_main_supplier_in_any_case_wins_over_the_first_listed() -> None:
    first = {"supplierPartyUrl": "/acme/api/partygroup/200", "supplierPrefOrderId": "20_ALT"}
    main = {"supplierPartyUrl": "/acme/api/partygroup/100", "supplierPrefOrderId": "10_main"}
    got, problems = _map("primary_vendor_party_id", [[first, main], [], None, [first]])
    assert (got, problems) == (["100", None, None, "200"], {})


@pytest.mark.parametrize(
    ("suppliers", "reason"),
    [
        pytest.param(
            [{"supplierPartyUrl": "/acme/api/partygroup/100", "supplierPrefOrderId": 10}],
            "has a supplierPrefOrderId that is not text (a number)",
            id="number-preference",
        ),
        pytest.param(
            [
                {"supplierPartyUrl": "/acme/api/partygroup/100", "supplierPrefOrderId": "MAIN"},
                {"supplierPrefOrderId": ["MAIN"]},
            ],
            "has a supplierPrefOrderId that is not text (a list)",
            id="list-preference-after-main",
        ),
        pytest.param(
            [{"supplierPartyUrl": {"url": 1}, "supplierPrefOrderId": "10_MAIN"}],
            "is not a URL (a object)",
            id="url-not-text",
        ),
    ],
)
def test_a_supplier_list_that_cannot_say_who_is_main_is_reported(
    suppliers: list[Any], reason: str
) -> None:
    _, problems = _map("primary_vendor_party_id", [suppliers])
    assert problems == {
        0: [f"primary_vendor_party_id (field supplierList) {reason} (got {shown(suppliers)})"]
    }


def test_an_unchosen_supplier_url_is_not_read() -> None:
    main = {"supplierPartyUrl": "/acme/api/partygroup/100", "supplierPrefOrderId": "10_MAIN"}
    got, problems = _map("primary_vendor_party_id", [[main, {"supplierPartyUrl": 5}]])
    assert (got, problems) == (["100"], {})


# --- one notion of an empty value ----------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  ", "--", "-", "\u2014", " \u2014 ", "N/A", "n/a"])
def test_empty_display_values_are_no_value_for_every_parser(value: Any) -> None:
    assert is_empty(value)
    assert parse_display_number(value) is None
    series = pd.Series([value], dtype=object)
    numbers, bad = coerce.to_number(series)
    assert numbers.isna().all() and not bad.any()
    times, bad = coerce.to_timestamp(series, "UTC")
    assert times.isna().all() and not bad.any()


@pytest.mark.parametrize("value", [0, "0", "none", "\u2013", "---", "NA"])
def test_other_values_are_not_empty(value: Any) -> None:
    assert not is_empty(value)
