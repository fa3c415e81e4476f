"""Reads against the sandbox: full reads, incremental windows, the cap split, GraphQL paging.

Ground truth is the sandbox's own answer (``server_rows``, ``SandboxControl.count``), never
the connector's; ids are compared as sets and as lists, so a lost or duplicated record fails.
"""

from __future__ import annotations

import gc
import itertools
import math
import tracemalloc
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
from finale_sandbox_support import (
    ACCOUNT_ZONE,
    COLLECTIONS,
    DATED_COLLECTIONS,
    Connect,
    frame_records,
    key_of,
    keys_of,
    parse_wire,
    server_rows,
    wire_time,
)

from connectors.finale.columnar import decode_deferred
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle

ZONE = ZoneInfo(ACCOUNT_ZONE)
ONE_SECOND = timedelta(seconds=1)
# Small pages, so every collection takes several requests (300 products: 22 facilities,
# 21 parties, 40 orders, ~880 stock entries).
PAGE_SIZES = {"facility": 5, "partygroup": 4, "product": 40, "inventoryitem": 150, "order": 7}
# Four months across the autumn DST change in the account zone (2025-11-02).
SINCE = datetime(2025, 9, 20, 6, 30, 15, tzinfo=UTC)
UNTIL = datetime(2026, 1, 20, 17, 45, 5, tzinfo=UTC)


def _local(moment: datetime) -> datetime:
    return moment.astimezone(ZONE).replace(tzinfo=None, microsecond=0)


def _updated_between(rows: list[dict], low: str, high: str) -> list[dict]:
    return [r for r in rows if r["lastUpdatedDate"] and low <= r["lastUpdatedDate"] <= high]


@pytest.mark.parametrize("collection", [pytest.param(c, id=c) for c in COLLECTIONS])
def test_full_read_returns_every_record_exactly_once(
    shared_sandbox: SandboxHandle,
    shared_control: SandboxControl,
    connect: Connect,
    collection: str,
) -> None:
    truth = server_rows(shared_sandbox, collection)
    page = PAGE_SIZES[collection]
    conn = connect(shared_sandbox)

    frames = list(conn.client.iter_collection(collection, page_size=page))

    records = frame_records(frames)
    keys = keys_of(collection, records)
    assert len(keys) == len(truth) == shared_control.count(collection, None)
    assert len(set(keys)) == len(keys), "a record came twice"
    assert set(keys) == set(keys_of(collection, truth))
    assert records == truth  # every value as served, in creation order
    assert len(frames) == math.ceil(len(truth) / page) >= 3
    offsets = [int(e.url.params["offset"]) for e in conn.log.of("GET")]
    assert offsets == [page * i for i in range(len(offsets))]
    if collection == "inventoryitem":
        assert all(e.path.endswith("/inventoryitem/") for e in conn.log.of("GET"))


@pytest.mark.parametrize("collection", [pytest.param(c, id=c) for c in DATED_COLLECTIONS])
def test_incremental_read_over_months_in_account_zone_matches_ground_truth(
    shared_sandbox: SandboxHandle,
    shared_control: SandboxControl,
    connect: Connect,
    collection: str,
) -> None:
    low, high = wire_time(_local(SINCE)), wire_time(_local(UNTIL))
    truth = _updated_between(server_rows(shared_sandbox, collection), low, high)
    conn = connect(shared_sandbox)

    chunks = list(
        conn.client.iter_updated(
            collection, since=SINCE, until=UNTIL, overlap=timedelta(0), chunk_size=7
        )
    )

    keys = [key_of(collection, r) for c in chunks for r in c.frame.to_dict("records")]
    assert truth, "the range should hold records, or the test proves nothing"
    assert (
        len(keys)
        == len(truth)
        == shared_control.count(collection, {"lastUpdatedDate": [low, high]})
    )
    assert len(set(keys)) == len(keys)
    assert set(keys) == set(keys_of(collection, truth))
    assert all(len(c.frame) <= 7 for c in chunks)

    # The windows on the wire: in account wall-clock time, each at most 30 days, within
    # [low, high], each asking for at most a chunk.
    requests = conn.log.of("GET")
    assert all(e.status == 200 for e in requests), "the sandbox refused a window"
    assert {e.url.params["limit"] for e in requests} == {"7"}
    windows = [[parse_wire(v) for v in e.filter["lastUpdatedDate"]] for e in requests]
    for start, end in windows:
        assert timedelta(0) <= end - start <= timedelta(days=30)
        assert low <= wire_time(start) and wire_time(end) <= high

    # The windows delivered (each chunk's, read whole by one of those requests) are adjacent
    # (next low = previous high + 1 s), in time order, and together exactly [low, high].
    delivered = [(_local(c.window_start), _local(c.window_end)) for c in chunks]
    assert all(c.last_in_window for c in chunks)
    assert len(delivered) >= 5
    assert all([start, end] in windows for start, end in delivered)
    assert wire_time(delivered[0][0]) == low and wire_time(delivered[-1][1]) == high
    for (_, previous_end), (start, _) in itertools.pairwise(delivered):
        assert start == previous_end + ONE_SECOND
    assert chunks[-1].window_end == UNTIL.replace(microsecond=0)


@pytest.mark.parametrize("collection", [pytest.param(c, id=c) for c in DATED_COLLECTIONS])
def test_incremental_read_from_watermark_returns_exactly_the_touched_records(
    make_sandbox, connect: Connect, collection: str
) -> None:
    handle: SandboxHandle = make_sandbox()
    conn = connect(handle)
    with SandboxControl(handle.base_url) as control:
        # The generated dates end on 2026-10-01; 75 days back from now reaches into them.
        first = list(
            conn.client.iter_updated(collection, since=datetime.now(UTC) - timedelta(days=75))
        )
        ranges = [e.filter["lastUpdatedDate"] for e in conn.log.of("GET")]
        spanned = {"lastUpdatedDate": [ranges[0][0], ranges[-1][1]]}
        assert sum(len(c.frame) for c in first) == control.count(collection, spanned)
        watermark = max(c.window_end for c in first if c.last_in_window)

        touched = control.touch(collection, 6)
        second = list(conn.client.iter_updated(collection, since=watermark))

    keys = [key_of(collection, r) for c in second for r in c.frame.to_dict("records")]
    # Nothing else changed within the 5-minute overlap, so exactly the touched records.
    assert sorted(keys) == sorted(touched)
    assert len(touched) == 6
    assert second[-1].last_in_window and second[-1].window_end >= watermark


def test_window_over_the_cap_is_split_and_every_record_returned_once(
    make_sandbox, connect: Connect
) -> None:
    # ~100-150 products updated per 30 days against a cap of 50: every window comes back
    # full and is halved, some twice.
    handle: SandboxHandle = make_sandbox(products=1500, max_entities=50)
    since, until = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC)
    low, high = wire_time(_local(since)), wire_time(_local(until))
    truth = _updated_between(server_rows(handle, "product"), low, high)
    conn = connect(handle)
    assert conn.settings.max_entities_per_response == 50

    chunks = list(
        conn.client.iter_updated(
            "product", since=since, until=until, overlap=timedelta(0), chunk_size=20
        )
    )

    keys = [c_row["productId"] for c in chunks for c_row in c.frame.to_dict("records")]
    with SandboxControl(handle.base_url) as control:
        assert len(keys) == len(truth) == control.count("product", {"lastUpdatedDate": [low, high]})
    assert len(truth) > 8 * 50
    assert len(set(keys)) == len(keys)
    assert set(keys) == {r["productId"] for r in truth}
    assert conn.client.stats.window_splits >= 4
    assert all(e.status == 200 for e in conn.log.exchanges)
    # The windows delivered (halves included) are adjacent, in time order, and cover the range.
    delivered = [(c.window_start, c.window_end) for c in chunks if c.last_in_window]
    assert delivered[0][0] == since and delivered[-1][1] == until
    for (_, previous_end), (start, _) in itertools.pairwise(delivered):
        assert start == previous_end + ONE_SECOND


def test_a_window_holding_more_than_a_chunk_is_streamed_in_chunk_sized_parts(
    shared_sandbox: SandboxHandle, shared_control: SandboxControl, connect: Connect
) -> None:
    # One 30-day window (the server's cap is 120,000, so it is never split for the cap)
    # holding several chunks' worth of products.
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    low, high = wire_time(_local(since)), wire_time(_local(until))
    truth = _updated_between(server_rows(shared_sandbox, "product"), low, high)
    chunk_size = 3
    conn = connect(shared_sandbox)

    chunks = list(
        conn.client.iter_updated(
            "product", since=since, until=until, overlap=timedelta(0), chunk_size=chunk_size
        )
    )

    assert len(truth) >= 3 * chunk_size, "the window should hold several chunks"
    keys = [r["productId"] for c in chunks for r in c.frame.to_dict("records")]
    assert (
        len(keys) == len(truth) == shared_control.count("product", {"lastUpdatedDate": [low, high]})
    )
    assert sorted(keys) == sorted(r["productId"] for r in truth), "a record lost or repeated"
    # Several chunks of at most a chunk each, and no response could carry more: every
    # request asked for at most chunk_size records, and none used offset (each part is one
    # snapshot, which a concurrent update cannot shift).
    assert len(chunks) >= 3
    assert all(len(c.frame) <= chunk_size for c in chunks)
    requests = conn.log.of("GET")
    assert {e.url.params["limit"] for e in requests} == {str(chunk_size)}
    assert not any("offset" in e.url.params for e in requests)
    # Each chunk is a part read whole: it may advance the watermark to its end, and the
    # parts are adjacent and in time order, so the watermark only moves past delivered data.
    assert all(c.last_in_window for c in chunks)
    assert chunks[0].window_start == since and chunks[-1].window_end == until
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.window_start == previous.window_end + ONE_SECOND


def test_more_records_in_one_second_than_the_cap_are_paged_with_offset(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox(max_entities=50)
    conn = connect(handle)
    with SandboxControl(handle.base_url) as control:
        touched = control.touch("product", 120)  # one lastUpdatedDate second for all 120

    chunks = list(
        conn.client.iter_updated(
            "product", since=datetime.now(UTC) - timedelta(hours=1), chunk_size=30
        )
    )

    keys = [r["productId"] for c in chunks for r in c.frame.to_dict("records")]
    assert sorted(keys) == sorted(touched)
    assert conn.client.stats.window_splits >= 10  # halved down to one second
    paged = [e for e in conn.log.of("GET") if "offset" in e.url.params]
    # Paged in chunks (30), not in responses of the server's cap (50): memory stays flat.
    assert [int(e.url.params["offset"]) for e in paged] == [0, 30, 60, 90, 120]
    second = paged[0].filter["lastUpdatedDate"][0]
    assert all(e.filter["lastUpdatedDate"] == [second, second] for e in paged)
    assert {r["lastUpdatedDate"] for c in chunks for r in c.frame.to_dict("records")} == {second}
    assert all(len(c.frame) <= 30 for c in chunks)
    assert chunks[-1].last_in_window
    crowded = [c for c in chunks if c.window_start == c.window_end]
    assert [c.last_in_window for c in crowded] == [False, False, False, True]


def test_graphql_connection_pages_raw_values_parsed_to_numbers(
    shared_sandbox: SandboxHandle, connect: Connect
) -> None:
    products = server_rows(shared_sandbox, "product")
    stock = server_rows(shared_sandbox, "inventoryitem")
    # Stock entries name their product by URL only (no productId).
    on_hand: dict[str, float] = {}
    for row in stock:
        on_hand[row["productUrl"]] = on_hand.get(row["productUrl"], 0.0) + row["quantityOnHand"]
    conn = connect(shared_sandbox)

    pages = list(
        conn.client.iter_graphql_connection(
            "productViewConnection",
            "productId status cost unitsInStock lastUpdated",
            page_size=70,
        )
    )

    nodes = [n for page in pages for n in page]
    assert len(pages) == math.ceil(len(products) / 70)
    ids = [n["productId"] for n in nodes]
    assert ids == [p["productId"] for p in products]  # all, once, in creation order
    by_id = {p["productId"]: p for p in products}
    for node in nodes:
        rest = by_id[node["productId"]]
        # formatter "none": the status code, not the label "Active"; ISO dates, not 11/28/2024
        assert node["status"] == rest["statusId"]
        assert node["lastUpdated"] == rest["lastUpdatedDate"]
        expected_cost = rest["cost"] if isinstance(rest["cost"], int | float) else None
        assert node["cost"] == expected_cost
        assert node["cost"] is None or isinstance(node["cost"], float)
        assert isinstance(node["unitsInStock"], float)
        assert node["unitsInStock"] == pytest.approx(on_hand.get(rest["productUrl"], 0.0))
    # Every GraphQL request asked for raw values and walked the cursor.
    bodies = [e.json_body() for e in conn.log.of("POST", "/graphql")]
    assert len(bodies) == len(pages)
    assert all('formatter: "none"' in b["query"] for b in bodies)
    assert bodies[0]["variables"]["after"] is None
    assert all(b["variables"]["after"] for b in bodies[1:])


def test_graphql_connection_with_arguments_filters_on_the_server(
    shared_sandbox: SandboxHandle, connect: Connect
) -> None:
    orders = server_rows(shared_sandbox, "order")
    purchase = [o["orderId"] for o in orders if o["orderTypeId"] == "PURCHASE_ORDER"]
    conn = connect(shared_sandbox)

    nodes = [
        node
        for page in conn.client.iter_graphql_connection(
            "orderViewConnection",
            "orderId type total orderDate",
            args={"type": ["PURCHASE_ORDER"]},
            page_size=6,
        )
        for node in page
    ]

    assert purchase and len(purchase) < len(orders)
    assert [n["orderId"] for n in nodes] == purchase
    assert {n["type"] for n in nodes} == {"PURCHASE_ORDER"}
    assert all(n["total"] is None or isinstance(n["total"], float) for n in nodes)


def test_deferred_fields_read_the_same_records_paged_and_by_window(
    shared_sandbox: SandboxHandle, connect: Connect
) -> None:
    truth = server_rows(shared_sandbox, "product")
    defer = ("priceList", "userFieldDataList")
    conn = connect(shared_sandbox)

    pages = list(
        conn.client.iter_collection("product", page_size=PAGE_SIZES["product"], defer=defer)
    )
    chunks = conn.client.iter_updated(
        "product", since=datetime(2020, 1, 1, tzinfo=UTC), chunk_size=1000, defer=defer
    )
    windowed = [c.frame for c in chunks]

    for frames in (pages, windowed):
        records = frame_records(frames)
        assert all(isinstance(r["priceList"], msgspec.Raw) for r in records)
        decoded = [{k: decode_deferred(v) for k, v in r.items()} for r in records]
        assert sorted(decoded, key=lambda r: r["productId"]) == sorted(
            truth, key=lambda r: r["productId"]
        )
    assert len(pages) >= 3  # the repeated-page check compared rows holding deferred values


def test_page_bodies_are_freed_without_the_cyclic_collector(
    shared_sandbox: SandboxHandle, connect: Connect
) -> None:
    # httpx links a response it sends and its stream both ways. Were a page's body kept on
    # such a response, it would live until the cyclic collector runs: tens of MB a page
    # with real page sizes. Read with the collector off, the pages' bodies must be gone.
    conn = connect(shared_sandbox)
    list(conn.client.iter_collection("product", page_size=150))  # warm: imports, caches
    received_before = conn.client.stats.bytes_received
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for frame in conn.client.iter_collection("product", page_size=150):
            del frame
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    received = conn.client.stats.bytes_received - received_before
    assert received > 100_000
    assert retained < received / 2, (retained, received)
