"""The PostgREST double honours the conventions the REST reader relies on (raw HTTP here,
no connector), so the reader's tests prove something about PostgREST, not about the double."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from postgrest_double import RunningDouble
from supabase_support import insert_requests, request_rows

pytestmark = pytest.mark.postgres


@pytest.fixture
def api(app_db: str, postgrest: RunningDouble, service_key: str) -> Iterator[httpx.Client]:
    with psycopg.connect(app_db, autocommit=True) as conn:
        insert_requests(conn, list(request_rows(30)))
    headers = {"apikey": service_key, "Authorization": f"Bearer {service_key}"}
    with httpx.Client(base_url=postgrest.rest_url, headers=headers) as client:
        yield client


def _ids(response: httpx.Response) -> list[Any]:
    return [row["id"] for row in response.json()]


def test_select_order_and_limit(api: httpx.Client) -> None:
    response = api.get(
        "/purchase_order_requests",
        params={"select": "id,vendor", "order": "id.desc", "limit": "3", "offset": "2"},
    )
    assert response.status_code == 200
    rows = response.json()
    assert [set(r) for r in rows] == [{"id", "vendor"}] * 3
    every = _ids(api.get("/purchase_order_requests", params={"select": "id", "order": "id.desc"}))
    assert _ids(response) == every[2:5]
    assert response.headers["content-range"] == "2-4/*"


def test_filters_and_logic_trees(api: httpx.Client) -> None:
    every = api.get("/purchase_order_requests", params={"select": "id,quantity,vendor"}).json()
    got = api.get(
        "/purchase_order_requests",
        params={"select": "id", "quantity": "gte.10", "vendor": "not.is.null", "order": "id"},
    )
    assert _ids(got) == sorted(
        r["id"] for r in every if r["quantity"] is not None and r["quantity"] >= 10 and r["vendor"]
    )
    tree = api.get(
        "/purchase_order_requests",
        params={
            "select": "id",
            "or": '(quantity.lt.0,and(vendor.eq."vendor-1",quantity.is.null))',
            "order": "id",
        },
    )
    assert _ids(tree) == sorted(
        r["id"]
        for r in every
        if (r["quantity"] is not None and r["quantity"] < 0)
        or (r["vendor"] == "vendor-1" and r["quantity"] is None)
    )


def test_range_header_and_max_rows_with_exact_count(
    api: httpx.Client, postgrest: RunningDouble
) -> None:
    postgrest.state.config.max_rows = 4
    response = api.get(
        "/purchase_order_requests",
        params={"select": "id", "order": "id"},
        headers={"Range": "5-14", "Range-Unit": "items", "Prefer": "count=exact"},
    )
    assert response.status_code == 206
    assert response.headers["content-range"] == "5-8/30"
    assert len(response.json()) == 4
    whole = api.get(
        "/purchase_order_requests",
        params={"select": "id", "quantity": "gt.40"},
        headers={"Prefer": "count=exact"},
    )
    assert whole.status_code == 200 and whole.headers["content-range"] == "0-2/3"
    empty = api.get(
        "/purchase_order_requests",
        params={"select": "id", "quantity": "gt.100000"},
        headers={"Prefer": "count=exact"},
    )
    assert (empty.status_code, empty.headers["content-range"], empty.json()) == (200, "*/0", [])
    beyond = api.get(
        "/purchase_order_requests",
        params={"select": "id", "offset": "31"},
        headers={"Prefer": "count=exact"},
    )
    assert beyond.status_code == 416 and beyond.json()["code"] == "PGRST103"


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        pytest.param("/purchase_order_requests", {"select": "id,nope"}, 400, "42703", id="col"),
        pytest.param("/purchase_order_requests", {"nope": "eq.1"}, 400, "42703", id="filter-col"),
        pytest.param("/purchase_order_requests", {"order": "nope"}, 400, "42703", id="order-col"),
        pytest.param("/no_such_table", {}, 404, "PGRST205", id="table"),
        pytest.param("/purchase_order_requests", {"id": "eqq.1"}, 400, "PGRST100", id="op"),
        pytest.param("/purchase_order_requests", {"or": "(id.eq.1"}, 400, "PGRST100", id="tree"),
        pytest.param("/purchase_order_requests", {"id": "eq.abc"}, 400, "22P02", id="value"),
    ],
)
def test_errors_carry_postgrest_codes(
    api: httpx.Client, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = api.get(path, params=params)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["message"]
    assert set(body) == {"code", "details", "hint", "message"}


def test_an_unexposed_schema_is_406(api: httpx.Client) -> None:
    response = api.get("/purchase_order_requests", headers={"Accept-Profile": "private"})
    assert response.status_code == 406 and response.json()["code"] == "PGRST106"


def test_the_gateway_wants_the_key(postgrest: RunningDouble, service_key: str) -> None:
    url = f"{postgrest.rest_url}/purchase_order_requests"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"apikey": "wrong"}).json()["message"] == "Invalid API key"
    bad_bearer = httpx.get(url, headers={"apikey": service_key, "Authorization": "Bearer x"})
    assert (bad_bearer.status_code, bad_bearer.json()["code"]) == (401, "PGRST301")


def test_injection_attempts_stay_values(api: httpx.Client, app_db: str) -> None:
    response = api.get(
        "/purchase_order_requests",
        params={"vendor": "eq.x'; DROP TABLE purchase_order_requests; --", "select": "id"},
    )
    assert response.status_code == 200 and response.json() == []
    with psycopg.connect(app_db) as conn:
        assert conn.execute("SELECT count(*) FROM purchase_order_requests").fetchone() == (30,)
