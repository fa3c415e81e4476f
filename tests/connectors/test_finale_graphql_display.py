"""GraphQL queries, Relay paging, and defensive display parsing."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest
from finale_fakes import API, ClientFactory, body_of, json_response

from connectors.finale import (
    FatalError,
    apply_converters,
    parse_display_date,
    parse_display_number,
    parse_duration_days,
)
from connectors.finale.graphql import connection_query


def _connection_server(nodes: list[dict[str, Any]], page_cap: int = 100):  # type: ignore[no-untyped-def]
    """A Relay server over ``nodes``; cursors are stringified indexes."""
    requests: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = body_of(request)
        requests.append(body)
        first = min(body["variables"]["first"], page_cap)
        after = body["variables"]["after"]
        start = int(after) + 1 if after is not None else 0
        page = nodes[start : start + first]
        edges = [{"node": n, "cursor": str(start + i)} for i, n in enumerate(page)]
        end = start + len(page) - 1
        return json_response(
            {
                "data": {
                    "productViewConnection": {
                        "edges": edges,
                        "pageInfo": {
                            "hasNextPage": end < len(nodes) - 1,
                            "endCursor": str(end) if page else None,
                        },
                    }
                }
            }
        )

    return handler, requests


def test_connection_pages_with_first_after_and_formatter_none(make_client: ClientFactory) -> None:
    nodes = [{"productId": f"P{i}", "cost": "1,200.50" if i == 0 else i} for i in range(5)]
    handler, requests = _connection_server(nodes)
    client = make_client(handler)
    pages = list(
        client.iter_graphql_connection(
            "productViewConnection", "productId cost", args={"status": "active"}, page_size=2
        )
    )
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [r["variables"] for r in requests] == [
        {"first": 2, "after": None},
        {"first": 2, "after": "1"},
        {"first": 2, "after": "3"},
    ]
    query = requests[0]["query"]
    assert 'formatter: "none"' in query
    assert 'status: "active"' in query
    assert "pageInfo { hasNextPage endCursor }" in query
    # Default converters for productViewConnection parse display-formatted numbers.
    assert pages[0][0] == {"productId": "P0", "cost": 1200.5}
    assert pages[2][0]["cost"] == 4.0


def test_a_callers_formatter_is_overridden() -> None:
    query = connection_query(
        "orderViewConnection", "orderId", {"formatter": "html", "type": ["PURCHASE_ORDER"]}
    )
    assert query.count("formatter:") == 1
    assert 'formatter: "none"' in query
    assert 'type: ["PURCHASE_ORDER"]' in query


def test_graphql_errors_with_status_200_are_fatal(make_client: ClientFactory) -> None:
    client = make_client(
        lambda r: json_response({"errors": [{"message": "Cannot query field 'x'"}], "data": None})
    )
    with pytest.raises(FatalError, match="Cannot query field 'x'"):
        client.graphql("{ x }")


def test_graphql_posts_query_and_variables(make_client: ClientFactory) -> None:
    sent: list[httpx.Request] = []
    client = make_client(lambda r: sent.append(r) or json_response({"data": {"a": 1}}))
    assert client.graphql("query Q($n: Int) { a }", {"n": 3}) == {"a": 1}
    assert str(sent[0].url) == f"{API}/graphql"
    assert body_of(sent[0]) == {"query": "query Q($n: Int) { a }", "variables": {"n": 3}}


def test_a_cursor_that_repeats_stops_the_paging(make_client: ClientFactory) -> None:
    page = {
        "data": {
            "productViewConnection": {
                "edges": [{"node": {"productId": "A"}, "cursor": "c1"}],
                "pageInfo": {"hasNextPage": True, "endCursor": "c1"},
            }
        }
    }
    pages = make_client(lambda r: json_response(page)).iter_graphql_connection(
        "productViewConnection", "productId"
    )
    with pytest.raises(FatalError, match="came back twice"):
        list(pages)


def test_an_unknown_connection_name_is_fatal(make_client: ClientFactory) -> None:
    pages = make_client(lambda r: json_response({"data": {}})).iter_graphql_connection(
        "productViewConnection", "productId"
    )
    with pytest.raises(FatalError, match="no 'productViewConnection'"):
        list(pages)


@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param("1,200", 1200.0, id="thousands"),
        pytest.param("$1,200.50", 1200.5, id="currency"),
        pytest.param("(12.5)", -12.5, id="accounting-negative"),
        pytest.param("-3", -3.0, id="negative"),
        pytest.param(7, 7.0, id="raw-int"),
        pytest.param(2.5, 2.5, id="raw-float"),
        pytest.param("--", None, id="placeholder"),
        pytest.param(None, None, id="null"),
    ],
)
def test_parse_display_number(raw: object, expected: float | None) -> None:
    assert parse_display_number(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param("11/28/2024", date(2024, 11, 28), id="us-display"),
        pytest.param("2024-11-28", date(2024, 11, 28), id="iso-date"),
        pytest.param("2024-11-28T05:16:14", date(2024, 11, 28), id="iso-timestamp"),
        pytest.param("Nov 28, 2024", date(2024, 11, 28), id="month-name"),
        pytest.param("--", None, id="placeholder"),
    ],
)
def test_parse_display_date(raw: object, expected: date | None) -> None:
    assert parse_display_date(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param("24 d", 24.0, id="days-short"),
        pytest.param("3 days", 3.0, id="days-long"),
        pytest.param("2 weeks", 14.0, id="weeks"),
        pytest.param("1.5", 1.5, id="bare-number"),
        pytest.param(10, 10.0, id="raw"),
        pytest.param("--", None, id="placeholder"),
    ],
)
def test_parse_duration_days(raw: object, expected: float | None) -> None:
    assert parse_duration_days(raw) == expected


@pytest.mark.parametrize(
    "parse, raw",
    [
        pytest.param(parse_display_number, "twelve", id="number-words"),
        pytest.param(parse_display_number, True, id="number-bool"),
        pytest.param(parse_display_date, "someday", id="date-words"),
        pytest.param(parse_duration_days, "24 fortnights", id="duration-unit"),
    ],
)
def test_unparseable_display_values_raise_value_error(parse: Any, raw: object) -> None:
    with pytest.raises(ValueError):
        parse(raw)


def test_apply_converters_blanks_placeholders_reaches_nested_lists_and_keeps_garbage() -> None:
    node = {
        "productId": "P1",
        "category": "--",
        "unitsInStock": "1,200",
        "cost": "call us",
        "stockByFacility": [{"facilityUrl": "/f/1", "unitsInStock": "3"}, {"unitsInStock": "--"}],
    }
    converted = apply_converters(
        node,
        {
            "unitsInStock": parse_display_number,
            "cost": parse_display_number,
            "stockByFacility.unitsInStock": parse_display_number,
        },
    )
    assert converted == {
        "productId": "P1",
        "category": None,
        "unitsInStock": 1200.0,
        "cost": "call us",  # left for the schema boundary to quarantine
        "stockByFacility": [{"facilityUrl": "/f/1", "unitsInStock": 3.0}, {"unitsInStock": None}],
    }
    assert node["unitsInStock"] == "1,200"  # the input is not modified
