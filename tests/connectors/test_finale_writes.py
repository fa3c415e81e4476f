"""Order writes: create, update, status actions, and error bodies on HTTP 200."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from finale_fakes import API, ClientFactory, FakeTime, body_of, json_response

from connectors.finale import (
    DuplicateOrderError,
    FatalError,
    InvalidRequestError,
    RetryableError,
)

LOCKED_ORDER = {
    "orderId": "PO-1",
    "orderUrl": "/acme/api/order/PO-1",
    "statusId": "ORDER_LOCKED",
    "actionUrlLock": None,
    "actionUrlComplete": "/acme/api/order/PO-1/complete",
    "actionUrlCancel": "/acme/api/order/PO-1/cancel",
}


def test_create_posts_the_order_to_the_collection_and_returns_the_stored_object(
    make_client: ClientFactory,
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return json_response({**body_of(request), "orderUrl": "/acme/api/order/PO-1"})

    order = {
        "orderId": "PO-1",
        "orderTypeId": "PURCHASE_ORDER",
        "orderDate": datetime(2025, 1, 10, 15, 0, tzinfo=UTC),
    }
    created = make_client(handler).create_order(order)
    assert created["orderUrl"] == "/acme/api/order/PO-1"
    assert str(sent[0].url) == f"{API}/order"
    assert sent[0].method == "POST"
    assert body_of(sent[0])["orderDate"] == "2025-01-10T15:00:00"  # rendered in account zone


@pytest.mark.parametrize(
    "body, phrase",
    [
        pytest.param({"errorMessage": "Facility is required"}, "Facility is required", id="msg"),
        pytest.param(
            {"errors": [{"message": "quantity must be positive"}]},
            "quantity must be positive",
            id="errors-list",
        ),
        pytest.param({"success": False}, "success: false", id="success-false"),
    ],
)
def test_an_error_body_on_http_200_is_fatal(
    make_client: ClientFactory, body: dict, phrase: str
) -> None:
    calls: list[httpx.Request] = []
    client = make_client(lambda r: calls.append(r) or json_response(body))
    with pytest.raises(FatalError, match="refused the write") as info:
        client.create_order({"orderId": "PO-1"})
    assert phrase in str(info.value)
    assert info.value.status == 200
    assert not isinstance(info.value, DuplicateOrderError)
    assert len(calls) == 1


def test_an_empty_errors_list_is_success(make_client: ClientFactory) -> None:
    client = make_client(lambda r: json_response({"orderId": "PO-1", "errors": []}))
    assert client.create_order({"orderId": "PO-1"})["orderId"] == "PO-1"


@pytest.mark.parametrize(
    "status", [pytest.param(200, id="200-error-body"), pytest.param(400, id="400")]
)
def test_order_id_in_use_is_a_duplicate_order_error(
    make_client: ClientFactory, status: int
) -> None:
    body = {"errorMessage": "Order ID 'PO-1' is already in use"}
    client = make_client(lambda r: json_response(body, status))
    with pytest.raises(DuplicateOrderError) as info:
        client.create_order({"orderId": "PO-1"})
    assert info.value.order_id == "PO-1"
    assert isinstance(info.value, FatalError)
    assert "treat it as created" in str(info.value)


def test_create_with_a_client_chosen_id_is_retried_after_a_lost_answer(
    make_client: ClientFactory, fake_time: FakeTime
) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("no answer")
        return json_response({"errorMessage": "Order ID 'PO-1' is already in use"})

    with pytest.raises(DuplicateOrderError):
        make_client(handler).create_order({"orderId": "PO-1"})
    assert calls["n"] == 2


def test_create_without_an_id_is_not_repeated_when_it_may_have_been_applied(
    make_client: ClientFactory,
) -> None:
    calls: list[httpx.Request] = []
    client = make_client(lambda r: calls.append(r) or json_response({}, 502))
    with pytest.raises(RetryableError, match="may already have been applied"):
        client.create_order({"orderTypeId": "PURCHASE_ORDER"})
    assert len(calls) == 1


def test_create_without_an_id_is_repeated_after_a_429(make_client: ClientFactory) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return json_response({}, 429, **{"Retry-After": "1"})
        return json_response({"orderId": "10001"})

    assert make_client(handler).create_order({"orderTypeId": "PURCHASE_ORDER"})["orderId"] == (
        "10001"
    )


def test_update_posts_the_whole_object_to_its_order_url(make_client: ClientFactory) -> None:
    sent: list[httpx.Request] = []
    client = make_client(lambda r: sent.append(r) or json_response(body_of(r)))
    order = {**LOCKED_ORDER, "statusId": "ORDER_CREATED", "dueDate": "2025-02-01T00:00:00"}
    stored = client.update_order(order)
    assert str(sent[0].url) == f"{API}/order/PO-1"
    assert body_of(sent[0]) == order
    assert stored["dueDate"] == "2025-02-01T00:00:00"


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("ORDER_COMPLETED", id="completed"),
        pytest.param("ORDER_CANCELLED", id="cancelled"),
    ],
)
def test_final_orders_are_not_sent_for_update(make_client: ClientFactory, status: str) -> None:
    sent: list[httpx.Request] = []
    client = make_client(lambda r: sent.append(r) or json_response({}))
    with pytest.raises(FatalError, match="completed or cancelled"):
        client.update_order({**LOCKED_ORDER, "statusId": status})
    assert sent == []


def test_update_without_order_url_is_an_invalid_request(make_client: ClientFactory) -> None:
    with pytest.raises(InvalidRequestError, match="create_order"):
        make_client(lambda r: json_response({})).update_order({"orderId": "X"})


def test_update_order_fields_reads_merges_and_writes_back(make_client: ClientFactory) -> None:
    current = {**LOCKED_ORDER, "statusId": "ORDER_CREATED", "orderItemList": [{"quantity": 5}]}
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "GET":
            return json_response(current)
        return json_response(body_of(request))

    client = make_client(handler)
    client.update_order_fields("/acme/api/order/PO-1", {"dueDate": "2025-03-01T00:00:00"})
    assert [r.method for r in sent] == ["GET", "POST"]
    assert body_of(sent[1]) == {**current, "dueDate": "2025-03-01T00:00:00"}


def test_action_posts_to_the_action_url(make_client: ClientFactory) -> None:
    sent: list[httpx.Request] = []
    completed = {**LOCKED_ORDER, "statusId": "ORDER_COMPLETED", "actionUrlComplete": None}
    client = make_client(lambda r: sent.append(r) or json_response(completed))
    result = client.order_action(LOCKED_ORDER, "complete")
    assert result["statusId"] == "ORDER_COMPLETED"
    assert str(sent[0].url) == f"{API}/order/PO-1/complete"
    assert body_of(sent[0]) == {}


def test_missing_action_url_is_a_clear_error_without_a_request(
    make_client: ClientFactory,
) -> None:
    sent: list[httpx.Request] = []
    client = make_client(lambda r: sent.append(r) or json_response({}))
    with pytest.raises(FatalError) as info:
        client.order_action(LOCKED_ORDER, "lock")
    message = str(info.value)
    assert "not valid in the order's current status" in message
    assert "actionUrlLock" in message and "ORDER_LOCKED" in message and "PO-1" in message
    assert sent == []


def test_action_refused_but_already_done_returns_the_current_order(
    make_client: ClientFactory,
) -> None:
    """An earlier attempt locked the order and its answer was lost."""
    done = {**LOCKED_ORDER, "statusId": "ORDER_COMPLETED"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return json_response({"errorMessage": "action not valid"}, 400)
        return json_response(done)

    assert make_client(handler).order_action(LOCKED_ORDER, "complete") == done


def test_action_refused_and_not_done_raises(make_client: ClientFactory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return json_response({"errorMessage": "action not valid"}, 400)
        return json_response({**LOCKED_ORDER, "statusId": "ORDER_CANCELLED"})

    with pytest.raises(FatalError, match="action not valid"):
        make_client(handler).order_action(LOCKED_ORDER, "complete")
