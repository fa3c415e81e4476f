"""Full reads (limit/offset paging) and incremental reads (windows, splits, chunks)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from finale_fakes import (
    API,
    NOW,
    ClientFactory,
    FakeFinale,
    json_response,
    make_settings,
)

from connectors.finale import FatalError, InvalidRequestError, WindowChunk

CHICAGO = ZoneInfo("America/Chicago")


def _products(count: int, start: datetime, step: timedelta) -> list[dict]:
    """Products updated at start, start + step, ... (Finale timestamps, naive wall time)."""
    return [
        {
            "productId": f"P-{i:04d}",
            "productUrl": f"/acme/api/product/P-{i:04d}",
            "lastUpdatedDate": (start + i * step).strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for i in range(count)
    ]


# -- full reads -----------------------------------------------------------------------------------


def test_paging_uses_trailing_slash_limit_offset_and_stops_on_a_short_page(
    make_client: ClientFactory,
) -> None:
    finale = FakeFinale()
    finale.collections["inventoryitem"] = _products(25, datetime(2025, 1, 1), timedelta(hours=1))
    frames = list(make_client(finale).iter_collection("inventoryitem", page_size=10))
    assert [len(f) for f in frames] == [10, 10, 5]
    assert [f for r in finale.requests for f in [str(r.url.path)]] == [
        "/acme/api/inventoryitem/"
    ] * 3
    assert [(r.url.params["limit"], r.url.params["offset"]) for r in finale.requests] == [
        ("10", "0"),
        ("10", "10"),
        ("10", "20"),
    ]
    ids = [pid for f in frames for pid in f["productId"]]
    assert ids == [f"P-{i:04d}" for i in range(25)]


def test_an_exact_multiple_ends_with_one_empty_page(make_client: ClientFactory) -> None:
    finale = FakeFinale()
    finale.collections["facility"] = _products(20, datetime(2025, 1, 1), timedelta(hours=1))
    frames = list(make_client(finale).iter_collection("facility", page_size=10))
    assert [len(f) for f in frames] == [10, 10]
    assert len(finale.requests) == 3


def test_empty_collection_yields_nothing(make_client: ClientFactory) -> None:
    assert list(make_client(lambda r: json_response({})).iter_collection("facility")) == []


def test_page_size_is_capped_at_the_server_maximum(make_client: ClientFactory) -> None:
    """A page cut by the server cap must not be mistaken for the last, short page."""
    finale = FakeFinale(max_entities=4)
    finale.collections["product"] = _products(10, datetime(2025, 1, 1), timedelta(hours=1))
    client = make_client(finale, make_settings(max_entities_per_response=4))
    frames = list(client.iter_collection("product", page_size=100))
    assert sum(len(f) for f in frames) == 10
    assert finale.requests[0].url.params["limit"] == "4"


def test_a_server_that_ignores_offset_is_detected(make_client: ClientFactory) -> None:
    finale = FakeFinale(ignore_offset=True)
    finale.collections["product"] = _products(25, datetime(2025, 1, 1), timedelta(hours=1))
    pages = make_client(finale).iter_collection("product", page_size=10)
    assert len(next(pages)) == 10
    with pytest.raises(FatalError, match="ignores 'offset'"):
        next(pages)
    assert len(finale.requests) == 2


def test_filter_is_sent_base64_with_the_full_read(make_client: ClientFactory) -> None:
    finale = FakeFinale()
    finale.collections["order"] = [
        {"orderId": "1", "orderTypeId": "PURCHASE_ORDER"},
        {"orderId": "2", "orderTypeId": "SALES_ORDER"},
    ]
    frames = list(
        make_client(finale).iter_collection("order", filter={"orderTypeId": "PURCHASE_ORDER"})
    )
    assert list(frames[0]["orderId"]) == ["1"]
    assert finale.filters_sent() == [{"orderTypeId": ["PURCHASE_ORDER", "PURCHASE_ORDER"]}]


@pytest.mark.parametrize(
    "name", [pytest.param("../auth", id="dotdot"), pytest.param("pro duct", id="space")]
)
def test_bad_collection_names_are_rejected_at_call_time(
    make_client: ClientFactory, name: str
) -> None:
    with pytest.raises(InvalidRequestError):
        make_client(lambda r: json_response({})).iter_collection(name)


# -- incremental reads ----------------------------------------------------------------------------


def _ids(chunks: list[WindowChunk]) -> list[str]:
    """All productIds delivered (an empty chunk has no columns at all)."""
    return [pid for c in chunks if not c.frame.empty for pid in c.frame["productId"]]


def _run(client, collection: str = "product", **kwargs) -> list[WindowChunk]:  # type: ignore[no-untyped-def]
    kwargs.setdefault("overlap", timedelta(0))
    return list(client.iter_updated(collection, **kwargs))


def test_full_windows_are_split_recursively_without_losing_or_duplicating_records(
    make_client: ClientFactory,
) -> None:
    finale = FakeFinale(max_entities=7)
    # 100 products over 50 days, several per second in places (step of 12 hours; then a burst).
    records = _products(100, datetime(2025, 1, 1), timedelta(hours=12))
    burst = _products(6, datetime(2025, 1, 20, 8, 0, 0), timedelta(0))
    for i, row in enumerate(burst):
        row["productId"] = f"B-{i}"
    finale.collections["product"] = records + burst
    client = make_client(finale, make_settings(max_entities_per_response=7))

    chunks = _run(
        client,
        since=datetime(2025, 1, 1, tzinfo=UTC),
        until=datetime(2025, 3, 1, tzinfo=UTC),
    )
    ids = _ids(chunks)
    assert Counter(ids) == Counter(r["productId"] for r in finale.collections["product"])
    assert client.stats.window_splits > 0
    # Every request stayed within 30 days, and no response the client used was full.
    for spec in finale.filters_sent():
        low, high = (datetime.fromisoformat(v) for v in spec["lastUpdatedDate"])
        assert timedelta(0) <= high - low <= timedelta(days=30)
    assert all(len(c.frame) < 7 for c in chunks)


def test_a_single_second_with_more_records_than_a_response_holds_is_paged(
    make_client: ClientFactory,
) -> None:
    finale = FakeFinale(max_entities=5)
    finale.collections["product"] = _products(12, datetime(2025, 1, 5, 10, 0, 0), timedelta(0))
    client = make_client(finale, make_settings(max_entities_per_response=5))
    chunks = _run(
        client, since=datetime(2025, 1, 5, tzinfo=UTC), until=datetime(2025, 1, 6, tzinfo=UTC)
    )
    ids = _ids(chunks)
    assert sorted(ids) == [f"P-{i:04d}" for i in range(12)]
    crowded = datetime(2025, 1, 5, 10, 0, 0, tzinfo=UTC)
    second = [c for c in chunks if c.window_start == c.window_end == crowded]
    assert [len(c.frame) for c in second] == [5, 5, 2]
    assert [c.last_in_window for c in second] == [False, False, True]


def test_a_window_holding_more_than_a_chunk_is_read_in_adjacent_parts_of_less_than_a_chunk(
    make_client: ClientFactory,
) -> None:
    finale = FakeFinale()
    finale.collections["product"] = _products(50, datetime(2025, 1, 1), timedelta(days=1))
    client = make_client(finale)
    since = datetime(2025, 1, 1, tzinfo=UTC)
    until = datetime(2025, 2, 19, 23, 59, 59, tzinfo=UTC)

    chunks = _run(client, since=since, until=until, chunk_size=8)

    # Window 1 (01-01 .. 01-31) holds 31 records, window 2 holds 19: each is read in parts.
    assert Counter(_ids(chunks)) == Counter(r["productId"] for r in finale.collections["product"])
    assert len(chunks) >= 50 // 8 + 1
    assert all(len(c.frame) < 8 for c in chunks)
    # Every part was read whole, so every chunk may advance the watermark; the parts are
    # adjacent, in time order, and cover [since, until] exactly.
    assert all(c.last_in_window for c in chunks)
    assert chunks[0].window_start == since and chunks[-1].window_end == until
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.window_start == previous.window_end + timedelta(seconds=1)
    assert all(c.window_end.tzinfo is UTC for c in chunks)
    # No response could hold more than a chunk, and none was paged with offset.
    assert {r.url.params["limit"] for r in finale.requests} == {"8"}
    assert not any("offset" in r.url.params for r in finale.requests)
    for spec in finale.filters_sent():
        low, high = (datetime.fromisoformat(v) for v in spec["lastUpdatedDate"])
        assert timedelta(0) <= high - low <= timedelta(days=30)


def test_parts_are_sized_from_the_density_last_seen_so_few_come_back_full(
    make_client: ClientFactory,
) -> None:
    finale = FakeFinale()
    # 600 records, one every 2 hours: 360 per 30-day window, read in chunks of 100.
    finale.collections["product"] = _products(600, datetime(2025, 1, 1), timedelta(hours=2))
    client = make_client(finale)

    chunks = _run(
        client,
        since=datetime(2025, 1, 1, tzinfo=UTC),
        until=datetime(2025, 2, 19, 23, 59, 59, tzinfo=UTC),
        chunk_size=100,
    )

    assert Counter(_ids(chunks)) == Counter(r["productId"] for r in finale.collections["product"])
    # Only the first window's first part is read blind (whole, then halved twice); after
    # that each part aims at 80 records, and none comes back full again.
    assert client.stats.window_splits == 2
    assert len(finale.requests) == len(chunks) + 2
    sizes = [len(c.frame) for c in chunks]
    assert sizes[0] == 91  # the first 7.5 days, read whole after two halvings
    assert all(size <= 81 for size in sizes[1:])  # then aimed at 80 (remainders: fewer)


def test_an_empty_window_still_yields_one_empty_last_chunk(make_client: ClientFactory) -> None:
    finale = FakeFinale()
    finale.collections["product"] = []
    chunks = _run(
        make_client(finale),
        since=datetime(2025, 1, 1, tzinfo=UTC),
        until=datetime(2025, 1, 2, tzinfo=UTC),
    )
    assert len(chunks) == 1
    assert chunks[0].frame.empty and chunks[0].last_in_window
    assert chunks[0].window_end == datetime(2025, 1, 2, tzinfo=UTC)


def test_until_defaults_to_now_and_overlap_is_subtracted_once(make_client: ClientFactory) -> None:
    finale = FakeFinale()
    finale.collections["product"] = []
    since = NOW - timedelta(days=40)
    chunks = list(make_client(finale).iter_updated("product", since=since))
    specs = finale.filters_sent()
    assert specs[0]["lastUpdatedDate"][0] == (since - timedelta(minutes=5)).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    assert specs[-1]["lastUpdatedDate"][1] == NOW.strftime("%Y-%m-%dT%H:%M:%S")
    assert chunks[-1].window_end == NOW
    assert len(specs) == 2


def test_incremental_filter_is_rendered_in_the_account_zone(make_client: ClientFactory) -> None:
    finale = FakeFinale()
    finale.collections["order"] = [
        # Wall time in Chicago: 2025-01-10 08:00 CST == 14:00 UTC.
        {"orderId": "1", "orderTypeId": "PURCHASE_ORDER", "lastUpdatedDate": "2025-01-10T08:00:00"},
        {"orderId": "2", "orderTypeId": "SALES_ORDER", "lastUpdatedDate": "2025-01-10T08:00:00"},
    ]
    client = make_client(finale, make_settings(timezone="America/Chicago"))
    chunks = _run(
        client,
        "order",
        since=datetime(2025, 1, 10, 13, 0, tzinfo=UTC),
        until=datetime(2025, 1, 10, 15, 0, tzinfo=UTC),
        extra_filter={"orderTypeId": "PURCHASE_ORDER"},
    )
    assert finale.filters_sent() == [
        {
            "lastUpdatedDate": ["2025-01-10T07:00:00", "2025-01-10T09:00:00"],
            "orderTypeId": ["PURCHASE_ORDER", "PURCHASE_ORDER"],
        }
    ]
    assert list(chunks[0].frame["orderId"]) == ["1"]
    assert chunks[0].window_start == datetime(2025, 1, 10, 13, 0, tzinfo=UTC)
    # Each window is one request without offset.
    assert "offset" not in finale.requests[0].url.params


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"since": datetime(2025, 1, 1)}, "naive", id="naive-since"),
        pytest.param(
            {"since": NOW - timedelta(days=1), "window_days": 31}, "window_days", id="31-days"
        ),
        pytest.param(
            {"since": NOW, "extra_filter": {"lastUpdatedDate": [None, None]}},
            "lastUpdatedDate",
            id="extra-date-filter",
        ),
        pytest.param({"since": NOW, "chunk_size": 0}, "chunk_size", id="chunk-size"),
    ],
)
def test_bad_incremental_arguments_fail_at_call_time(
    make_client: ClientFactory, kwargs: dict, message: str
) -> None:
    client = make_client(lambda r: json_response({}))
    with pytest.raises(InvalidRequestError, match=message):
        client.iter_updated("product", **kwargs)


def test_get_reads_one_entity_by_the_url_from_the_data(make_client: ClientFactory) -> None:
    seen = []

    def handler(request):  # type: ignore[no-untyped-def]
        seen.append(str(request.url))
        return json_response({"productId": "A-1", "productUrl": "/acme/api/product/10077"})

    product = make_client(handler).get("/acme/api/product/10077")
    assert product["productId"] == "A-1"
    assert seen == [f"{API}/product/10077"]


def test_get_rejects_a_sku_instead_of_a_url(make_client: ClientFactory) -> None:
    with pytest.raises(InvalidRequestError, match="taken from the data"):
        make_client(lambda r: json_response({})).get("A-1")


# -- values msgspec refuses ---------------------------------------------------------------------


@pytest.mark.parametrize("defer", [(), ("priceList",)], ids=["plain", "deferring-decoder"])
def test_a_page_with_a_huge_number_or_a_lone_surrogate_is_read_not_failed(
    make_client: ClientFactory, defer: tuple[str, ...]
) -> None:
    # Valid JSON that msgspec refuses: a number beyond a float and a lone surrogate escape.
    # One odd record must not fail the page: the values arrive (inf, the surrogate) for the
    # pipeline to quarantine that record.
    body = (
        b'{"productId": ["A-1", "B-2"], "cost": [1e400, 2.5], '
        b'"internalName": ["ok", "bad \\ud800 name"], "priceList": [[], []]}'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("offset", "0") != "0":
            return httpx.Response(200, content=b"{}", headers={"content-type": "application/json"})
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    client = make_client(handler)
    (page,) = list(client.iter_collection("product", page_size=100, defer=defer))
    assert page["cost"].tolist() == [float("inf"), 2.5]
    assert page["internalName"].tolist() == ["ok", "bad \ud800 name"]


def test_a_body_that_is_not_json_is_still_retried_as_corrupt(make_client: ClientFactory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=b'{"productId": ["A-1"', headers={"content-type": "application/json"}
        )

    client = make_client(handler, make_settings(max_retries=1))
    with pytest.raises(Exception, match="not valid JSON"):
        list(client.iter_collection("product", page_size=100))
