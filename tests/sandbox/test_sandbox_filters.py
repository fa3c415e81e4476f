"""The ``filter`` parameter: ranges, open ends, equality, the 30-day rule and rejections."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sandbox_helpers import flt, read_all, rows

from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle


def _window(days_ago_start: float, days_ago_end: float | None) -> list[str | None]:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # the sandbox runs on UTC
    end = None if days_ago_end is None else (now - timedelta(days=days_ago_end)).isoformat()
    return [(now - timedelta(days=days_ago_start)).isoformat(), end]


def test_equality_filter_on_a_status(api: httpx.Client) -> None:
    orders = rows(read_all(api, "order"))
    expected = [o["orderId"] for o in orders if o["statusId"] == "ORDER_LOCKED"]
    body = read_all(api, "order", **flt({"statusId": ["ORDER_LOCKED", "ORDER_LOCKED"]}))
    assert body["orderId"] == expected
    assert set(body["statusId"]) == {"ORDER_LOCKED"}


def test_equality_filter_on_order_type(api: httpx.Client) -> None:
    body = read_all(api, "order", **flt({"orderTypeId": ["SALES_ORDER", "SALES_ORDER"]}))
    assert body["orderId"] and set(body["orderTypeId"]) == {"SALES_ORDER"}


@pytest.mark.parametrize(
    ("low", "high"),
    [
        pytest.param("2025-03-01T00:00:00", "2025-03-20T12:00:00", id="closed"),
        pytest.param("2026-09-15T00:00:00", None, id="open-high"),
    ],
)
def test_created_date_range_is_closed_and_null_leaves_an_end_open(
    api: httpx.Client, low: str, high: str | None
) -> None:
    products = rows(read_all(api, "product"))
    expected = [
        p["productId"]
        for p in products
        if p["createdDate"] >= low and (high is None or p["createdDate"] <= high)
    ]
    body = read_all(api, "product", **flt({"createdDate": [low, high]}))
    assert body["productId"] == expected


def test_range_bounds_are_inclusive(api: httpx.Client) -> None:
    product = rows(read_all(api, "product"))[10]
    stamp = product["lastUpdatedDate"]
    body = read_all(api, "product", **flt({"lastUpdatedDate": [stamp, stamp]}))
    assert product["productId"] in body["productId"]


def test_open_low_end_on_an_ordinary_field(api: httpx.Client) -> None:
    ids = read_all(api, "product")["productId"]
    cut = sorted(ids)[50]
    body = read_all(api, "product", **flt({"productId": [None, cut]}))
    assert sorted(body["productId"]) == sorted(i for i in ids if i <= cut)


def test_last_updated_window_matches_control_count(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    window = {"lastUpdatedDate": ["2026-01-01T00:00:00", "2026-01-30T23:59:59"]}
    body = read_all(api, "product", **flt(window))
    assert body["productId"], "the window should not be empty"
    assert all("2026-01-01" <= d < "2026-01-31" for d in body["lastUpdatedDate"])
    with SandboxControl(sandbox.base_url) as control:
        assert control.count("product", window) == len(body["productId"])


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param(
            {"lastUpdatedDate": ["2026-01-01T00:00:00", "2026-02-15T00:00:00"]},
            "30 days",
            id="wider-than-30-days",
        ),
        pytest.param({"lastUpdatedDate": _window(45, None)}, "30 days", id="open-end-too-old"),
        pytest.param(
            {"lastUpdatedDate": [None, "2026-01-15T00:00:00"]}, "lower bound", id="no-lower-bound"
        ),
        pytest.param({"lastUpdatedDate": [None, None]}, "lower bound", id="both-ends-null"),
        pytest.param({"lastUpdatedDate": ["yesterday", None]}, "timestamp", id="not-a-date"),
        pytest.param({"supplierList": [None, None]}, "cannot", id="nested-field"),
        pytest.param({"noSuchField": ["a", "b"]}, "unknown field", id="unknown-field"),
        pytest.param({"statusId": "PRODUCT_ACTIVE"}, "[low, high]", id="not-a-range"),
    ],
)
def test_bad_filters_are_400_with_error_message(
    api: httpx.Client, spec: dict, fragment: str
) -> None:
    response = api.get("/product/", params=flt(spec))
    assert response.status_code == 400
    assert fragment in response.json()["errorMessage"]


def test_a_window_of_exactly_30_days_and_an_open_recent_window_are_accepted(
    api: httpx.Client,
) -> None:
    exact = {"lastUpdatedDate": ["2026-01-01T00:00:00", "2026-01-31T00:00:00"]}
    assert api.get("/product/", params=flt(exact)).status_code == 200
    recent = {"lastUpdatedDate": _window(29, None)}
    assert api.get("/product/", params=flt(recent)).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("not base64!", id="not-base64"),
        pytest.param(base64.b64encode(b"{not json").decode(), id="not-json"),
        pytest.param(base64.b64encode(b"[1, 2]").decode(), id="not-an-object"),
    ],
)
def test_malformed_filter_parameter_is_400(api: httpx.Client, raw: str) -> None:
    response = api.get("/product/", params={"filter": raw})
    assert response.status_code == 400
    assert response.json()["errorMessage"]


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"productId": ["A", "A"]}, id="field-filter"),
        pytest.param({}, id="empty-filter"),
    ],
)
def test_inventoryitem_cannot_be_filtered(api: httpx.Client, spec: dict) -> None:
    response = api.get("/inventoryitem/", params=flt(spec))
    assert response.status_code == 400
    assert "cannot be filtered" in response.json()["errorMessage"]


def test_filter_then_offset_then_limit(api: httpx.Client) -> None:
    spec = {"orderTypeId": ["PURCHASE_ORDER", "PURCHASE_ORDER"]}
    all_ids = read_all(api, "order", **flt(spec))["orderId"]
    page = read_all(api, "order", limit=5, offset=3, **flt(spec))["orderId"]
    assert page == all_ids[3:8]
