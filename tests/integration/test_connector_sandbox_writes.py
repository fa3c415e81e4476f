"""Order writes against the sandbox: create, read back, update, status actions, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from finale_sandbox_support import Connect, server_rows

from connectors.finale import DuplicateOrderError, FatalError, FinaleClient, RetryableError
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle


def _purchase_order(handle: SandboxHandle, order_id: str | None) -> dict[str, Any]:
    facility = next(f for f in server_rows(handle, "facility") if f["parentFacilityUrl"])
    supplier = next(
        p for p in server_rows(handle, "partygroup") if "SUPPLIER" in (p["roleTypeIdList"] or [])
    )
    products = server_rows(handle, "product")[:3]
    order: dict[str, Any] = {
        "orderTypeId": "PURCHASE_ORDER",
        "destinationFacilityUrl": facility["facilityUrl"],
        "orderRoleList": [{"roleTypeId": "SUPPLIER", "partyId": supplier["partyId"]}],
        "orderItemList": [
            {"productUrl": p["productUrl"], "quantity": 10 + i, "unitPrice": 2.5}
            for i, p in enumerate(products)
        ],
    }
    if order_id is not None:
        order["orderId"] = order_id
    return order


def _read_updated_orders(client: FinaleClient, since: datetime) -> set[str]:
    return {
        row["orderId"]
        for chunk in client.iter_updated("order", since=since, overlap=timedelta(0))
        for row in chunk.frame.to_dict("records")
    }


def test_purchase_order_lifecycle_create_read_update_lock_complete(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox()
    conn = connect(handle)
    client = conn.client
    orders_before = len(server_rows(handle, "order"))

    created = client.create_order(_purchase_order(handle, "IT-PO-1"))
    assert created["orderId"] == "IT-PO-1" and created["statusId"] == "ORDER_CREATED"
    assert created["orderUrl"] == "/acme/api/order/IT-PO-1"
    assert [i["orderItemUrl"] for i in created["orderItemList"]] == [
        f"{created['orderUrl']}/item/{n}" for n in (1, 2, 3)
    ]
    assert created["actionUrlLock"] and created["actionUrlCancel"]
    assert client.get(created["orderUrl"]) == created

    # Update: the whole object goes back to its orderUrl. An aware datetime is written in
    # the account zone (America/Chicago is UTC-6 in December).
    changed = {
        **created,
        "dueDate": datetime(2026, 12, 15, 18, 0, tzinfo=UTC),
        "orderItemList": [{**created["orderItemList"][0], "quantity": 99}],
    }
    updated = client.update_order(changed)
    assert updated["dueDate"] == "2026-12-15T12:00:00"
    assert [(i["orderItemUrl"], i["quantity"]) for i in updated["orderItemList"]] == [
        (created["orderItemList"][0]["orderItemUrl"], 99)
    ]
    assert client.get(created["orderUrl"]) == updated
    posted = conn.log.of("POST", "/order/IT-PO-1")[-1].json_body()
    assert set(created) <= set(posted)  # the full object was sent, not a patch

    fields_changed = client.update_order_fields(created["orderUrl"], {"dueDate": None})
    assert fields_changed["dueDate"] is None
    assert fields_changed["orderItemList"] == updated["orderItemList"]

    locked = client.order_action(fields_changed, "lock")
    assert locked["statusId"] == "ORDER_LOCKED"
    assert locked["actionUrlLock"] is None and locked["actionUrlComplete"]
    completed = client.order_action(locked, "complete")
    assert completed["statusId"] == "ORDER_COMPLETED"
    assert completed["receiveDate"] is not None
    assert client.get(created["orderUrl"])["statusId"] == "ORDER_COMPLETED"
    assert len(server_rows(handle, "order")) == orders_before + 1
    assert all(e.status == 200 for e in conn.log.exchanges)


def test_cancel_an_order(make_sandbox, connect: Connect) -> None:
    handle: SandboxHandle = make_sandbox()
    client = connect(handle).client

    created = client.create_order(_purchase_order(handle, None))  # the server picks the id
    cancelled = client.order_action(created, "cancel")

    assert created["orderId"] and created["statusId"] == "ORDER_CREATED"
    assert cancelled["statusId"] == "ORDER_CANCELLED"
    assert cancelled["actionUrlCancel"] is None and cancelled["actionUrlLock"] is None
    stored = {o["orderId"]: o for o in server_rows(handle, "order")}
    assert stored[created["orderId"]]["statusId"] == "ORDER_CANCELLED"


def test_actions_and_updates_no_longer_valid_are_clear_fatal_errors(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox()
    conn = connect(handle)
    client = conn.client
    created = client.create_order(_purchase_order(handle, "IT-PO-2"))
    locked = client.order_action(created, "lock")
    client.order_action(locked, "complete")

    # A stale copy still offers cancel; Finale refuses it (400) and the order is not
    # cancelled, so the refusal comes back as a fatal error with Finale's reason.
    with pytest.raises(FatalError) as stale_cancel:
        client.order_action(locked, "cancel")
    assert not isinstance(stale_cancel.value, RetryableError)
    assert stale_cancel.value.status == 400
    assert "ORDER_COMPLETED" in str(stale_cancel.value)
    assert "Retrying will not help" in str(stale_cancel.value)

    # The current copy offers no lock link: refused before anything is sent.
    current = client.get(created["orderUrl"])
    sent = len(conn.log.exchanges)
    with pytest.raises(FatalError, match="has no actionUrlLock") as no_link:
        client.order_action(current, "lock")
    assert "ORDER_CREATED" in str(no_link.value)
    assert len(conn.log.exchanges) == sent

    # Updating a completed order: refused by the client (current copy) and by the server
    # (stale copy that still says LOCKED).
    with pytest.raises(FatalError, match="completed or cancelled"):
        client.update_order({**current, "dueDate": None})
    with pytest.raises(FatalError) as stale_update:
        client.update_order({**locked, "dueDate": None})
    assert stale_update.value.status == 400
    assert "cannot be modified" in str(stale_update.value)

    assert client.get(created["orderUrl"])["statusId"] == "ORDER_COMPLETED"
    assert conn.client.stats.retries == 0


def test_duplicate_order_id_is_a_duplicate_order_error(make_sandbox, connect: Connect) -> None:
    handle: SandboxHandle = make_sandbox()
    client = connect(handle).client
    existing = server_rows(handle, "order")[0]

    with pytest.raises(DuplicateOrderError) as caught:
        client.create_order(_purchase_order(handle, existing["orderId"]))

    assert caught.value.order_id == existing["orderId"]
    assert "already in use" in str(caught.value)
    stored = [o for o in server_rows(handle, "order") if o["orderId"] == existing["orderId"]]
    assert stored == [existing]  # unchanged, not overwritten


def test_created_and_changed_orders_show_up_in_the_next_incremental_read(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox()
    client = connect(handle).client
    first = list(client.iter_updated("order", since=datetime.now(UTC) - timedelta(days=3)))
    watermark = first[-1].window_end
    assert sum(len(c.frame) for c in first) == 0  # nothing changed in the last 3 days

    created = client.create_order(_purchase_order(handle, "IT-PO-3"))
    open_order = next(
        o
        for o in server_rows(handle, "order")
        if o["statusId"] == "ORDER_CREATED" and o["orderId"] != "IT-PO-3"
    )
    client.order_action(open_order, "lock")
    with SandboxControl(handle.base_url) as control:
        cancelled = control.cancel_orders(1)

    assert _read_updated_orders(client, watermark) == {
        created["orderId"],
        open_order["orderId"],
        *cancelled,
    }
