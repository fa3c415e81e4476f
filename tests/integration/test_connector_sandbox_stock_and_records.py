"""Stock entries in Finale's documented shape, and hostile raw records, read by the connector.

Ground truth is the sandbox (``server_rows``, ``SandboxControl``); what is checked is what
the connector's ``iter_collection`` / ``iter_updated`` / ``get`` hand to their callers.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from finale_sandbox_support import (
    ACCOUNT_ZONE,
    Connect,
    frame_records,
    keys_of,
    server_rows,
)

from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle

QUANTITIES = ("quantityOnHand", "quantityOnOrder", "quantityReserved")
HUGE = 10**399 + 7  # 400 digits: beyond 64-bit integers
HOSTILE_PRODUCTS: list[dict[str, Any]] = [
    {
        "productId": "EVIL-NUL\x00-1",
        "productUrl": "/acme/api/product/EVIL-1",
        "internalName": ["a list", "where a string belongs"],
        "statusId": {"an": "object"},
        "cost": HUGE,
        "lastUpdatedDate": "2025-03-01T10:00:00",
        "supplierList": "not a list",
        "userFieldDataList": [{"attrName": None, "attrValue": 12}],
        "extraField": "\x00",
    },
    {
        "productId": HUGE,
        "internalName": "NUL \x00 inside",
        "cost": "12.5",
        "lastUpdatedDate": 1740823200,  # a number where a timestamp belongs
        "priceList": [[[]]],
    },
    {"lastUpdatedDate": ["2025-03-01T10:00:00"], "createdDate": -1.5e300},
    {},
]


def test_stock_entries_read_by_the_connector_have_the_documented_shape(
    shared_sandbox: SandboxHandle, connect: Connect
) -> None:
    conn = connect(shared_sandbox)
    entries = frame_records(conn.client.iter_collection("inventoryitem", page_size=200))

    assert entries == server_rows(shared_sandbox, "inventoryitem")
    assert all("productId" not in entry for entry in entries)
    identities = keys_of("inventoryitem", entries)
    assert len(set(identities)) == len(identities)
    for entry in entries:
        assert sum(1 for q in QUANTITIES if entry[q] != 0) == 1
        assert (entry["orderUrl"] is None) == (entry["quantityOnHand"] != 0)
    fractional = [e["quantityOnHand"] for e in entries if not e["quantityOnHand"].is_integer()]
    assert fractional and all(round(q, 3) == q for q in fractional)
    assert any(e["quantityOnHand"] < 0 for e in entries)  # dirty, on purpose

    # Order entries resolve, through the connector, to committed orders of the right type.
    kinds: Counter[str] = Counter()
    orders = {e["orderUrl"] for e in entries if e["orderUrl"] is not None}
    for url in sorted(orders):
        order = conn.client.get(url)
        assert order["statusId"] == "ORDER_LOCKED"
        mine = [e for e in entries if e["orderUrl"] == url]
        lines = {line["productUrl"] for line in order["orderItemList"]}
        assert {e["productUrl"] for e in mine} <= lines
        if order["orderTypeId"] == "PURCHASE_ORDER":
            assert all(e["quantityOnOrder"] != 0 for e in mine)
            assert {e["facilityUrl"] for e in mine} == {order["destinationFacilityUrl"]}
        else:
            assert order["orderTypeId"] == "SALES_ORDER"
            assert all(e["quantityReserved"] != 0 for e in mine)
            assert {e["facilityUrl"] for e in mine} == {order["originFacilityUrl"]}
        kinds[order["orderTypeId"]] += 1
    assert set(kinds) == {"PURCHASE_ORDER", "SALES_ORDER"}

    # Products are identified by URL: the product collection's, numeric ones included.
    product_urls = {p["productUrl"] for p in server_rows(shared_sandbox, "product")}
    stock_urls = {e["productUrl"] for e in entries}
    assert stock_urls <= product_urls
    assert any(url.rsplit("/", 1)[1].isdigit() for url in stock_urls)


def test_hostile_records_round_trip_exactly_through_the_connector(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox(products=120)
    with SandboxControl(handle.base_url) as control:
        assert control.add_records("product", HOSTILE_PRODUCTS) == len(HOSTILE_PRODUCTS)
        stock_entry = {"productUrl": ["x"], "quantityOnHand": "3", "quantityReserved": HUGE}
        assert control.add_records("inventoryitem", [stock_entry]) == 1
    conn = connect(handle)

    records = frame_records(conn.client.iter_collection("product", page_size=50))
    stock = frame_records(conn.client.iter_collection("inventoryitem", page_size=200))

    assert len(records) == 120 + len(HOSTILE_PRODUCTS)
    fields = list(records[0])
    assert fields[-1] == "extraField"
    assert all(r["extraField"] is None for r in records[:120])
    for sent, got in zip(HOSTILE_PRODUCTS, records[120:], strict=True):
        assert got == {field: sent.get(field) for field in fields}
    evil, huge = records[120], records[121]
    assert evil["productId"] == "EVIL-NUL\x00-1" and evil["extraField"] == "\x00"
    assert evil["internalName"] == ["a list", "where a string belongs"]
    assert evil["cost"] == HUGE and huge["productId"] == HUGE  # all 400 digits
    assert huge["internalName"] == "NUL \x00 inside"
    assert stock[-1] == {field: stock_entry.get(field) for field in stock[-1]}
    # The injected product is also reachable by its (string) URL.
    assert conn.client.get("/acme/api/product/EVIL-1") == evil


def test_incremental_read_finds_injected_records_whose_dates_compare(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox(products=120)
    with SandboxControl(handle.base_url) as control:
        control.add_records("product", HOSTILE_PRODUCTS)
    zone = ZoneInfo(ACCOUNT_ZONE)
    since = datetime(2025, 2, 20, tzinfo=zone)
    until = datetime(2025, 3, 10, tzinfo=zone)
    conn = connect(handle)

    found = [
        r
        for chunk in conn.client.iter_updated(
            "product", since=since, until=until, overlap=timedelta(0)
        )
        for r in chunk.frame.to_dict("records")
    ]

    low, high = "2025-02-20T00:00:00", "2025-03-10T00:00:00"
    generated = [
        r["productId"]
        for r in server_rows(handle, "product")[:120]
        if low <= r["lastUpdatedDate"] <= high
    ]
    # Only the injected record with a real timestamp string matches; a number, a list or a
    # missing date does not (and none of them breaks the read).
    assert [r["productId"] for r in found] == [*generated, "EVIL-NUL\x00-1"]
    assert all(e.status == 200 for e in conn.log.exchanges)
