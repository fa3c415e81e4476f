"""Order writes: create, duplicate ids, update, status actions and their URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sandbox_helpers import api_client, flt, read_all

from sandbox.server import SandboxHandle

ACTIONS = ("actionUrlLock", "actionUrlComplete", "actionUrlCancel", "actionUrlEdit")


@pytest.fixture
def writer(private: SandboxHandle) -> httpx.Client:
    with api_client(private) as client:
        yield client


def _product(client: httpx.Client, index: int = 0) -> tuple[str, str]:
    body = read_all(client, "product", limit=index + 1)
    return body["productId"][index], body["productUrl"][index]


def _create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    _, url = _product(client)
    payload = {
        "orderTypeId": "PURCHASE_ORDER",
        "orderRoleList": [{"roleTypeId": "SUPPLIER", "partyId": "100005"}],
        "orderItemList": [{"productUrl": url, "quantity": 12, "unitPrice": 3.5}],
        **fields,
    }
    response = client.post("/order", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


def test_create_assigns_urls_status_and_dates(writer: httpx.Client, private: SandboxHandle) -> None:
    order = _create(writer, orderId="PO-TEST-1")
    assert order["orderUrl"] == f"/{private.config.account}/api/order/PO-TEST-1"
    assert order["statusId"] == "ORDER_CREATED"
    assert order["orderItemList"][0]["orderItemUrl"].startswith(order["orderUrl"] + "/item/")
    assert order["actionUrlLock"] and order["actionUrlCancel"] and order["actionUrlEdit"]
    assert order["actionUrlComplete"] is None
    created = datetime.fromisoformat(order["createdDate"])
    now = datetime.now(UTC).replace(tzinfo=None)
    assert abs(created - now) < timedelta(seconds=5)


def test_created_order_appears_in_later_reads_with_last_updated_now(
    writer: httpx.Client, private: SandboxHandle
) -> None:
    before = read_all(writer, "order")["orderId"]
    order = _create(writer)
    assert order["orderId"] not in before
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    window = {"lastUpdatedDate": [(now - timedelta(minutes=1)).isoformat(), None]}
    recent = read_all(writer, "order", **flt(window))
    assert recent["orderId"] == [order["orderId"]]
    assert read_all(writer, "order")["orderId"][-1] == order["orderId"]  # creation order
    fetched = writer.get(private.base_url + order["orderUrl"]).json()
    assert fetched == order


def test_duplicate_order_id_answers_200_with_error_message(writer: httpx.Client) -> None:
    existing = read_all(writer, "order", limit=1)["orderId"][0]
    count = len(read_all(writer, "order")["orderId"])
    response = writer.post("/order", json={"orderTypeId": "SALES_ORDER", "orderId": existing})
    assert response.status_code == 200
    assert response.json() == {"errorMessage": f"Order ID '{existing}' is already in use"}
    assert len(read_all(writer, "order")["orderId"]) == count


def test_lock_complete_cycle_nulls_action_urls(
    writer: httpx.Client, private: SandboxHandle
) -> None:
    order = _create(writer)
    locked = writer.post(private.base_url + order["actionUrlLock"], json={}).json()
    assert locked["statusId"] == "ORDER_LOCKED"
    assert locked["actionUrlLock"] is None
    assert locked["actionUrlComplete"] and locked["actionUrlCancel"]
    done = writer.post(private.base_url + locked["actionUrlComplete"], json={}).json()
    assert done["statusId"] == "ORDER_COMPLETED"
    assert done["receiveDate"] is not None
    assert all(done[a] is None for a in ACTIONS)


@pytest.mark.parametrize("start", ["created", "locked"])
def test_cancel_from_created_or_locked(
    writer: httpx.Client, private: SandboxHandle, start: str
) -> None:
    order = _create(writer)
    if start == "locked":
        order = writer.post(private.base_url + order["actionUrlLock"], json={}).json()
    cancelled = writer.post(private.base_url + order["actionUrlCancel"], json={}).json()
    assert cancelled["statusId"] == "ORDER_CANCELLED"
    assert all(cancelled[a] is None for a in ACTIONS)


def test_an_action_that_is_no_longer_valid_is_400(
    writer: httpx.Client, private: SandboxHandle
) -> None:
    order = _create(writer)
    writer.post(private.base_url + order["actionUrlLock"], json={})
    again = writer.post(private.base_url + order["actionUrlLock"], json={})
    assert again.status_code == 400
    assert "not valid" in again.json()["errorMessage"]


def test_update_replaces_lines_and_bumps_last_updated(
    writer: httpx.Client, private: SandboxHandle
) -> None:
    order = _create(writer)
    sku, url = _product(writer, 4)
    order["orderItemList"].append({"productUrl": url, "quantity": 2, "unitPrice": 9.0})
    order["dueDate"] = "2030-01-15T00:00:00"
    updated = writer.post(private.base_url + order["orderUrl"], json=order).json()
    assert [i["productId"] for i in updated["orderItemList"]][-1] == sku
    first, second = (i["orderItemUrl"] for i in updated["orderItemList"])
    assert first != second and first == order["orderItemList"][0]["orderItemUrl"]
    assert updated["dueDate"] == "2030-01-15T00:00:00"
    assert updated["lastUpdatedDate"] >= order["lastUpdatedDate"]


@pytest.mark.parametrize("final", ["actionUrlCancel", "complete"])
def test_writes_to_completed_or_cancelled_orders_are_400(
    writer: httpx.Client, private: SandboxHandle, final: str
) -> None:
    order = _create(writer)
    if final == "complete":
        order = writer.post(private.base_url + order["actionUrlLock"], json={}).json()
        writer.post(private.base_url + order["actionUrlComplete"], json={})
    else:
        writer.post(private.base_url + order["actionUrlCancel"], json={})
    response = writer.post(private.base_url + order["orderUrl"], json={"dueDate": None})
    assert response.status_code == 400
    assert "cannot be modified" in response.json()["errorMessage"]


def test_line_with_unresolvable_product_url_is_kept_without_link(writer: httpx.Client) -> None:
    bad_url = "/acme/api/product/DOES-NOT-EXIST"
    order = _create(writer, orderItemList=[{"productUrl": bad_url, "quantity": 1}])
    assert len(order["orderItemList"]) == 1
    assert order["orderItemList"][0]["productUrl"] is None


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param({"orderTypeId": "TRANSFER"}, "orderTypeId", id="bad-type"),
        pytest.param({"orderTypeId": "SALES_ORDER", "dueDate": "soon"}, "dueDate", id="bad-date"),
        pytest.param(
            {"orderTypeId": "SALES_ORDER", "orderItemList": "x"}, "orderItemList", id="bad-lines"
        ),
    ],
)
def test_malformed_create_is_400(writer: httpx.Client, payload: dict, fragment: str) -> None:
    response = writer.post("/order", json=payload)
    assert response.status_code == 400
    assert fragment in response.json()["errorMessage"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/product/", 405, id="product-collection"),
        pytest.param("/product/supplierupdate", 405, id="supplier-update"),
        pytest.param("/inventoryvariance", 405, id="inventory-variance"),
        pytest.param("/order/NO-SUCH-ORDER", 404, id="unknown-order"),
        pytest.param("/order/NO-SUCH-ORDER/lock", 404, id="action-on-unknown-order"),
    ],
)
def test_unsupported_or_unknown_write_targets(writer: httpx.Client, path: str, status: int) -> None:
    response = writer.post(path, json={})
    assert response.status_code == status
    assert response.json()["errorMessage"]
