"""REST collections: shape, determinism, URLs, realism and dirty data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from sandbox_helpers import api_client, read_all, rows

from sandbox.control import SandboxControl
from sandbox.data import DEFAULT_ANCHOR
from sandbox.server import SandboxHandle

FIELDS = {
    "facility": [
        "facilityId",
        "facilityUrl",
        "facilityName",
        "parentFacilityUrl",
        "statusId",
        "facilityTypeId",
        "lastUpdatedDate",
    ],
    "partygroup": [
        "partyId",
        "partyUrl",
        "groupName",
        "roleTypeIdList",
        "statusId",
        "contactMechList",
        "lastUpdatedDate",
    ],
    "product": [
        "productId",
        "productUrl",
        "internalName",
        "statusId",
        "userCategory",
        "createdDate",
        "lastUpdatedDate",
        "cost",
        "priceList",
        "supplierList",
        "reorderGuidelineList",
        "userFieldDataList",
    ],
    # Finale's documented shape: no productId (the product is its URL).
    "inventoryitem": [
        "productUrl",
        "facilityUrl",
        "lotId",
        "normalizedPackingString",
        "orderUrl",
        "quantityOnHand",
        "quantityOnOrder",
        "quantityReserved",
    ],
    "order": [
        "orderId",
        "orderUrl",
        "orderTypeId",
        "statusId",
        "orderDate",
        "dueDate",
        "receiveDate",
        "createdDate",
        "lastUpdatedDate",
        "destinationFacilityUrl",
        "originFacilityUrl",
        "orderRoleList",
        "orderItemList",
        "orderAdjustmentList",
        "actionUrlLock",
        "actionUrlComplete",
        "actionUrlCancel",
        "actionUrlEdit",
    ],
}


@pytest.mark.parametrize("collection", list(FIELDS))
def test_collection_is_column_major_with_equal_length_arrays(
    api: httpx.Client, collection: str
) -> None:
    body = read_all(api, collection)
    assert list(body) == FIELDS[collection]
    lengths = {len(values) for values in body.values()}
    assert len(lengths) == 1
    assert lengths.pop() > 0


def test_nested_lists_are_arrays_of_arrays_of_objects(api: httpx.Client) -> None:
    body = read_all(api, "product")
    supplier_lists = body["supplierList"]
    assert all(isinstance(entry, list) for entry in supplier_lists)
    first = next(entry for entry in supplier_lists if entry)
    assert set(first[0]) == {
        "supplierPartyUrl",
        "supplierProductId",
        "supplierPrefOrderId",
        "price",
    }
    assert any(entry == [] for entry in supplier_lists)  # missing lists are empty, not absent


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    bodies = []
    for seed in (7, 7, 8):
        with api_client(make_sandbox(products=150, seed=seed)) as client:
            bodies.append(
                tuple(client.get(f"/{c}/").content for c in ("product", "order", "partygroup"))
            )
    assert bodies[0] == bodies[1]
    assert all(a != b for a, b in zip(bodies[0], bodies[2], strict=True))


def test_about_ten_percent_of_products_have_numeric_urls_that_sku_urls_do_not_reach(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    handle = make_sandbox(products=2000)
    with api_client(handle) as client:
        body = read_all(client, "product")
        prefix = f"/{handle.config.account}/api/product/"
        numeric = [
            (pid, url)
            for pid, url in zip(body["productId"], body["productUrl"], strict=True)
            if url != prefix + pid
        ]
        assert 0.07 < len(numeric) / 2000 < 0.13
        assert all(url[len(prefix) :].isdigit() for _, url in numeric)
        sku, url = numeric[0]
        assert client.get(f"/product/{sku}").status_code == 404
        entity = client.get(handle.base_url + url)
        assert entity.status_code == 200
        assert entity.json()["productId"] == sku


@pytest.mark.parametrize("collection", ["product", "order", "facility", "partygroup"])
def test_single_entity_get_returns_the_row_object(
    sandbox: SandboxHandle, api: httpx.Client, collection: str
) -> None:
    body = read_all(api, collection)
    url_field = FIELDS[collection][1]
    record = rows(body)[3]
    response = api.get(sandbox.base_url + record[url_field])
    assert response.status_code == 200
    assert response.json() == record


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/inventoryitem", 404, id="inventoryitem-without-slash"),
        pytest.param("/inventoryitem/", 200, id="inventoryitem-with-slash"),
        pytest.param("/product", 200, id="product-without-slash"),
        pytest.param("/vendor/", 404, id="guessed-collection-name"),
        pytest.param("/product/NO-SUCH-SKU", 404, id="unknown-entity"),
    ],
)
def test_trailing_slash_and_unknown_paths(api: httpx.Client, path: str, status: int) -> None:
    assert api.get(path).status_code == status


def test_plain_query_parameters_are_ignored(api: httpx.Client) -> None:
    everything = api.get("/order/").content
    filtered_in_query = api.get("/order/", params={"orderTypeId": "PURCHASE_ORDER"}).content
    assert filtered_in_query == everything
    types = set(httpx.Response(200, content=everything).json()["orderTypeId"])
    assert types == {"PURCHASE_ORDER", "SALES_ORDER"}


def test_limit_and_offset_page_through_creation_order(api: httpx.Client) -> None:
    ids = read_all(api, "product")["productId"]
    pages = [
        read_all(api, "product", limit=150, offset=offset)["productId"] for offset in (0, 150, 300)
    ]
    assert [len(p) for p in pages] == [150, 150, 100]
    assert [pid for page in pages for pid in page] == ids
    assert read_all(api, "product", limit=10, offset=5000)["productId"] == []


def test_response_is_capped_at_max_entities(make_sandbox: Callable[..., SandboxHandle]) -> None:
    with api_client(make_sandbox(max_entities=50)) as client:
        assert len(read_all(client, "product")["productId"]) == 50
        assert len(read_all(client, "product", limit=80)["productId"]) == 50
        assert len(read_all(client, "product", limit=20)["productId"]) == 20
        tail = read_all(client, "product", offset=180)["productId"]
        assert len(tail) == 20


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"limit": "ten"}, "limit", id="limit-not-int"),
        pytest.param({"offset": "-1"}, "offset", id="negative-offset"),
    ],
)
def test_bad_paging_parameters_are_400(api: httpx.Client, params: dict, message: str) -> None:
    response = api.get("/product/", params=params)
    assert response.status_code == 400
    assert message in response.json()["errorMessage"]


STOCK_IDENTITY = ("facilityUrl", "lotId", "normalizedPackingString", "orderUrl", "productUrl")
QUANTITIES = ("quantityOnHand", "quantityOnOrder", "quantityReserved")


def _kind(entry: dict) -> str:
    (field,) = [q for q in QUANTITIES if entry[q] != 0]
    return field


def test_stock_entries_have_the_documented_identity_and_one_nonzero_quantity(
    api: httpx.Client,
) -> None:
    stock = rows(read_all(api, "inventoryitem"))
    assert 2.0 <= len(stock) / 400 <= 4.0
    assert all("productId" not in entry for entry in stock)
    for entry in stock:
        assert sum(1 for q in QUANTITIES if entry[q] != 0) == 1, entry
        assert all(isinstance(entry[q], float) for q in QUANTITIES)
    identities = Counter(tuple(e[f] for f in STOCK_IDENTITY) for e in stock)
    assert max(identities.values()) == 1
    # Every kind is present: on hand, on order and reserved.
    assert Counter(_kind(e) for e in stock).keys() == set(QUANTITIES)


def test_stock_product_urls_come_from_the_product_table(api: httpx.Client) -> None:
    products = read_all(api, "product")
    urls = set(products["productUrl"])
    stock_urls = set(read_all(api, "inventoryitem")["productUrl"])
    assert stock_urls <= urls
    sku_urls = {f"/acme/api/product/{sku}" for sku in products["productId"]}
    assert stock_urls - sku_urls, "some stock entries point at numeric product URLs"


def test_order_entries_point_at_committed_orders_of_the_right_type(api: httpx.Client) -> None:
    orders = {o["orderUrl"]: o for o in rows(read_all(api, "order"))}
    stock = rows(read_all(api, "inventoryitem"))
    expected: Counter[tuple[str, str]] = Counter()
    for order in orders.values():
        if order["statusId"] == "ORDER_LOCKED":
            for line in order["orderItemList"]:
                expected[(order["orderUrl"], line["productUrl"])] += line["quantity"]
    seen: Counter[tuple[str, str]] = Counter()
    for entry in stock:
        kind = _kind(entry)
        if kind == "quantityOnHand":
            assert entry["orderUrl"] is None
            continue
        order = orders[entry["orderUrl"]]  # a real order of the sandbox
        assert order["statusId"] == "ORDER_LOCKED"
        assert entry["lotId"] is None and entry["normalizedPackingString"] is None
        if kind == "quantityOnOrder":
            assert order["orderTypeId"] == "PURCHASE_ORDER"
            assert entry["facilityUrl"] == order["destinationFacilityUrl"]
        else:
            assert order["orderTypeId"] == "SALES_ORDER"
            assert entry["facilityUrl"] == order["originFacilityUrl"]
        seen[(entry["orderUrl"], entry["productUrl"])] += entry[kind]
    # One entry per committed order x product, holding the sum of that product's lines.
    assert seen == +expected
    assert len(seen) >= 4


def test_products_sold_by_weight_have_fractional_quantities(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    with api_client(make_sandbox(products=2000)) as client:
        stock = rows(read_all(client, "inventoryitem"))
    on_hand = [e for e in stock if e["quantityOnHand"] != 0]
    fractional = [e for e in on_hand if not float(e["quantityOnHand"]).is_integer()]
    assert fractional
    for entry in fractional:
        quantity = entry["quantityOnHand"]
        assert round(quantity, 3) == quantity  # at most 3 decimals
        assert repr(quantity) == repr(round(quantity, 3))
    assert any(len(repr(e["quantityOnHand"]).split(".")[1]) == 3 for e in fractional)
    weighed = {e["productUrl"] for e in fractional}
    assert 0.03 < len(weighed) / 2000 < 0.07  # ~5% of products are sold by weight


def test_stock_lives_at_sub_locations(api: httpx.Client) -> None:
    facilities = rows(read_all(api, "facility"))
    top = {f["facilityUrl"] for f in facilities if f["parentFacilityUrl"] is None}
    subs = {f["facilityUrl"] for f in facilities if f["parentFacilityUrl"] in top}
    assert 2 <= len(top) <= 6
    assert set(read_all(api, "inventoryitem")["facilityUrl"]) <= subs


def test_every_supplier_list_has_exactly_one_main_supplier(api: httpx.Client) -> None:
    suppliers = read_all(api, "partygroup")
    supplier_urls = {
        url
        for url, roles in zip(suppliers["partyUrl"], suppliers["roleTypeIdList"], strict=True)
        if "SUPPLIER" in roles
    }
    lists = [s for s in read_all(api, "product")["supplierList"] if s]
    for entries in lists:
        assert sum("MAIN" in e["supplierPrefOrderId"] for e in entries) == 1
        assert {e["supplierPartyUrl"] for e in entries} <= supplier_urls
    # The main supplier is not always listed first.
    assert any("MAIN" not in entries[0]["supplierPrefOrderId"] for entries in lists)


def test_parties_include_primary_suppliers_customers_and_a_carrier(api: httpx.Client) -> None:
    body = read_all(api, "partygroup")
    assert "PRIMARY" in body["partyId"]
    roles = {r for role_list in body["roleTypeIdList"] for r in role_list}
    assert roles == {"SUPPLIER", "CUSTOMER", "CARRIER"}
    assert all(pid == "PRIMARY" or pid.isdigit() for pid in body["partyId"])  # numeric party ids


def test_orders_exist_in_every_type_and_status_with_valid_action_urls(api: httpx.Client) -> None:
    orders = rows(read_all(api, "order"))
    pairs = {(o["orderTypeId"], o["statusId"]) for o in orders}
    statuses = {"ORDER_CREATED", "ORDER_LOCKED", "ORDER_COMPLETED", "ORDER_CANCELLED"}
    assert pairs == {(t, s) for t in ("PURCHASE_ORDER", "SALES_ORDER") for s in statuses}
    for order in orders:
        status = order["statusId"]
        assert (order["actionUrlLock"] is not None) == (status == "ORDER_CREATED")
        assert (order["actionUrlComplete"] is not None) == (status == "ORDER_LOCKED")
        assert (order["actionUrlCancel"] is not None) == (
            status
            in statuses
            - {
                "ORDER_COMPLETED",
                "ORDER_CANCELLED",
            }
        )
        assert order["orderItemList"], "every generated order has lines"
        assert (order["receiveDate"] is not None) == (status == "ORDER_COMPLETED")


def test_last_updated_dates_span_two_years_before_the_anchor(api: httpx.Client) -> None:
    anchor = datetime.fromisoformat(DEFAULT_ANCHOR)
    dates = [datetime.fromisoformat(d) for d in read_all(api, "product")["lastUpdatedDate"]]
    assert min(dates) >= anchor - timedelta(days=731)
    assert max(dates) <= anchor
    assert max(dates) - min(dates) > timedelta(days=600)
    created = read_all(api, "product")["createdDate"]
    assert created == sorted(created)  # creation order


def test_a_small_share_of_records_is_dirty(make_sandbox: Callable[..., SandboxHandle]) -> None:
    with api_client(make_sandbox(products=3000)) as client:
        products = read_all(client, "product")
        names = products["internalName"]
        costs = products["cost"]
        assert "" in names and None in names
        assert any(n and not n.isascii() for n in names)
        assert any(n and n != n.strip() for n in names)
        assert "--" in costs and None in costs and 1e12 in costs
        assert any(isinstance(c, float) and c < 0 for c in costs)
        dirty = sum(
            1
            for n, c in zip(names, costs, strict=True)
            if not n
            or n != n.strip()
            or not n.isascii()
            or not isinstance(c, float)
            or c <= 0
            or c >= 1e12
        )
        assert 0.005 < dirty / 3000 < 0.03
        stock = read_all(client, "inventoryitem")["quantityOnHand"]
        assert any(q < 0 for q in stock) and 1e12 in stock


def test_collections_do_not_depend_on_reading_order_or_earlier_changes(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    plain, changed, reordered = (make_sandbox(products=150) for _ in range(3))
    with SandboxControl(changed.base_url) as control:
        control.touch("product", 40, seed=1)
        control.delete("product", ["SOIL-000001", "PEST-000001", "FERT-000001"])
    with SandboxControl(reordered.base_url) as control:
        # Stock entries come from the orders as generated, not as changed before stock is read.
        assert len(control.cancel_orders(10)) == 10
        control.touch("order", 10, seed=2)
    with api_client(plain) as first, api_client(changed) as second:
        assert first.get("/order/").content == second.get("/order/").content
        assert first.get("/inventoryitem/").content == second.get("/inventoryitem/").content
        with api_client(reordered) as third:
            assert first.get("/inventoryitem/").content == third.get("/inventoryitem/").content
            assert first.get("/order/").content != third.get("/order/").content
