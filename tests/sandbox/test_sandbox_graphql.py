"""GraphQL connections: Relay paging, display formatting vs ``formatter: "none"``, errors."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sandbox_helpers import read_all, rows

from sandbox.graphql import display_number

PRODUCTS = """
query Products($after: String, $first: Int = 100) {
  productViewConnection(first: $first, after: $after, formatter: "none") {
    edges { cursor node { productId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def gql(api: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict:
    response = api.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200
    return response.json()


def test_paging_visits_every_product_once_in_creation_order(api: httpx.Client) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        result = gql(api, PRODUCTS, {"after": after, "first": 150})
        connection = result["data"]["productViewConnection"]
        seen += [edge["node"]["productId"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        assert after == connection["edges"][-1]["cursor"]
    assert pages == 3
    assert seen == read_all(api, "product")["productId"]


NODE_FIELDS = "productId title status category cost unitsInStock unitsOnOrder lastUpdated"


def _product_nodes(api: httpx.Client, formatter: str) -> list[dict[str, Any]]:
    query = (
        f"{{ productViewConnection(first: 400{formatter}) {{ edges {{ node {{ {NODE_FIELDS} "
        "stockByFacility { facilityUrl unitsInStock } } } } }"
    )
    return [e["node"] for e in gql(api, query)["data"]["productViewConnection"]["edges"]]


def test_display_formatting_by_default(api: httpx.Client) -> None:
    nodes = _product_nodes(api, "")
    assert all(isinstance(n["cost"], str) for n in nodes)
    assert all(re.fullmatch(r"\d\d/\d\d/\d{4}", n["lastUpdated"]) for n in nodes)
    assert {n["status"] for n in nodes} <= {"Active", "Inactive", "--"}
    big = [n["unitsInStock"] for n in nodes if "," in n["unitsInStock"]]
    assert big, "some product should have 1,000+ units, shown with a thousands separator"
    assert any(n["category"] == "--" or n["cost"] == "--" for n in nodes)  # empties shown as --


def test_formatter_none_gives_raw_values_that_match_rest(api: httpx.Client) -> None:
    nodes = _product_nodes(api, ', formatter: "none"')
    products = {p["productId"]: p for p in rows(read_all(api, "product"))}
    stock = rows(read_all(api, "inventoryitem"))
    assert any(n["unitsOnOrder"] for n in nodes), "some product should be on order"
    for node in nodes:
        product = products[node["productId"]]
        assert node["title"] == product["internalName"]
        assert node["status"] == product["statusId"]
        assert node["cost"] == product["cost"]
        assert node["lastUpdated"] == product["lastUpdatedDate"]
        # Stock entries name the product by URL only; totals are exact to 3 decimals.
        mine = [r for r in stock if r["productUrl"] == product["productUrl"]]
        on_hand = round(sum(r["quantityOnHand"] for r in mine), 3)
        assert node["unitsInStock"] == on_hand
        assert node["unitsOnOrder"] == round(sum(r["quantityOnOrder"] for r in mine), 3)
        per_facility = round(sum(f["unitsInStock"] for f in node["stockByFacility"]), 3)
        assert per_facility == on_hand
        assert {f["facilityUrl"] for f in node["stockByFacility"]} == {
            r["facilityUrl"] for r in mine
        }


def test_field_level_formatter_overrides_the_connection(api: httpx.Client) -> None:
    query = """{ productViewConnection(first: 20) {
        edges { node { cost raw: cost(formatter: "none") } } } }"""
    nodes = [e["node"] for e in gql(api, query)["data"]["productViewConnection"]["edges"]]
    numeric = [n for n in nodes if isinstance(n["raw"], float)]
    assert numeric
    for node in numeric:
        assert node["cost"] == display_number(node["raw"])


def test_order_connection_filters_by_type_and_exposes_the_supplier(api: httpx.Client) -> None:
    query = """{ orderViewConnection(first: 500, type: ["PURCHASE_ORDER"], formatter: "none") {
        edges { node { orderId type status orderDate total supplier { partyId } } } } }"""
    nodes = [e["node"] for e in gql(api, query)["data"]["orderViewConnection"]["edges"]]
    rest = rows(read_all(api, "order"))
    purchase = [o for o in rest if o["orderTypeId"] == "PURCHASE_ORDER"]
    assert [n["orderId"] for n in nodes] == [o["orderId"] for o in purchase]
    assert {n["type"] for n in nodes} == {"PURCHASE_ORDER"}
    by_id = {o["orderId"]: o for o in purchase}
    for node in nodes:
        roles = by_id[node["orderId"]]["orderRoleList"]
        expected = roles[0]["partyId"] if roles else None
        assert (node["supplier"] or {}).get("partyId") == expected
        assert isinstance(node["total"], float | int)


def test_display_labels_for_orders_and_parties(api: httpx.Client) -> None:
    query = """{ orderViewConnection(first: 50) { edges { node { type status orderDate } } }
                 partyViewConnection(first: 50) { edges { node { name roles status } } } }"""
    data = gql(api, query)["data"]
    orders = [e["node"] for e in data["orderViewConnection"]["edges"]]
    assert {o["type"] for o in orders} == {"Purchase", "Sale"}
    assert {o["status"] for o in orders} <= {"Draft", "Committed", "Completed", "Canceled"}
    parties = [e["node"] for e in data["partyViewConnection"]["edges"]]
    assert any("Supplier" in p["roles"] for p in parties)
    assert all(isinstance(p["roles"], str) for p in parties)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        pytest.param(
            "{ productViewConnection(first: 1) { edges { node { nope } } } }",
            "nope",
            id="unknown-field",
        ),
        pytest.param(
            "{ vendorConnection { edges { cursor } } }", "vendorConnection", id="unknown-connection"
        ),
        pytest.param(
            "{ productViewConnection(first: 1) { edges { node { productId }",
            "Syntax",
            id="syntax-error",
        ),
        pytest.param(
            '{ productViewConnection(after: "bogus") { edges { cursor } } }',
            "cursor",
            id="bad-cursor",
        ),
        pytest.param(
            "{ productViewConnection(sort: 1) { edges { cursor } } }", "sort", id="unknown-argument"
        ),
        pytest.param("mutation { x }", "mutation", id="mutation"),
    ],
)
def test_errors_come_back_with_200_in_an_errors_array(
    api: httpx.Client, query: str, fragment: str
) -> None:
    result = gql(api, query)
    assert result["data"] is None
    assert fragment in result["errors"][0]["message"]
