"""Write-back end to end without Prefect: app requests -> Finale orders (the sandbox, real
HTTP on loopback) -> outcomes in the app tables, on a real PostgreSQL.

Finale's side is read back from the sandbox with plain HTTP, the app's from the database.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from writeback_support import World, finale_settings

from connectors.finale import FinaleClient
from writeback.run import WritebackSummary, run_lock, run_writeback

pytestmark = pytest.mark.postgres


def run(world: World, **settings: Any) -> WritebackSummary:
    """One write-back run (the warehouse and the app share the test database)."""
    with FinaleClient(finale_settings(world.handle, **settings)) as client:
        return run_writeback(world.app, world.engine, client)


def outcome(summary: WritebackSummary, request_id: int) -> str:
    return next(r["outcome"] for r in summary.requests if r["request_id"] == request_id)


def writes(world: World) -> int:
    requests = world.control.stats()["requests"]
    return requests.get("write", 0) + requests.get("action", 0)


def lines_of(order: dict[str, Any]) -> list[tuple[str, Decimal, Decimal | None]]:
    return [
        (
            i["productUrl"],
            Decimal(str(i["quantity"])),
            None if i["unitPrice"] is None else Decimal(str(i["unitPrice"])),
        )
        for i in order["orderItemList"]
    ]


def test_a_new_request_becomes_one_draft_order_with_urls_from_the_warehouse(
    world: World,
) -> None:
    vendor = world.vendor()
    facility_id, facility_url = world.facility()
    (sku1, url1), (sku2, url2) = world.products(2, numeric_url=True)
    assert not url1.endswith("/" + sku1), "the test needs a product whose URL is not its SKU"
    request_id = world.add_request(vendor, [(sku1, 12, "3.5"), (sku2, "2.5", None)], facility_id)

    summary = run(world)

    assert summary.status == "succeeded"
    assert summary.counts["created"] == 1 and sum(summary.counts.values()) == 1
    order = world.finale_order(f"APP-{request_id}")
    assert order["orderTypeId"] == "PURCHASE_ORDER" and order["statusId"] == "ORDER_CREATED"
    assert order["orderRoleList"] == [{"roleTypeId": "SUPPLIER", "partyId": vendor}]
    assert order["destinationFacilityUrl"] == facility_url
    assert lines_of(order) == [
        (url1, Decimal(12), Decimal("3.5")),
        (url2, Decimal("2.5"), None),
    ]
    stored = world.request(request_id)
    assert stored["finale_order_id"] == f"APP-{request_id}"
    assert stored["finale_order_url"] == order["orderUrl"]
    assert stored["finale_status"] == "ORDER_CREATED"
    assert stored["sync_status"] == "synced" and stored["sync_error"] is None
    assert stored["synced_hash"] and stored["synced_at"] is not None

    # Nothing changed: the next run reads the order but writes nothing.
    before = writes(world)
    again = run(world)
    assert outcome(again, request_id) == "unchanged"
    assert writes(world) == before
    assert len(world.finale_orders(f"APP-{request_id}")) == 1


@pytest.mark.parametrize(
    ("how", "retries", "runs"),
    [
        pytest.param("timeout", 3, 1, id="timeout-retried-in-the-call"),
        pytest.param("drop", 3, 1, id="dropped-retried-in-the-call"),
        pytest.param("timeout", 0, 2, id="timeout-found-by-the-next-run"),
    ],
)
def test_a_create_whose_answer_is_lost_after_finale_stored_it_makes_exactly_one_order(
    world: World, how: str, retries: int, runs: int
) -> None:
    vendor = world.vendor()
    ((sku, url),) = world.products(1)
    request_id = world.add_request(vendor, [(sku, 5, 1)])
    world.control.lose_answers(1, how)

    summaries = [run(world, timeout_seconds=1.0, max_retries=retries) for _ in range(runs)]

    assert world.control.stats()["faults"][f"lost_answer_{how}"] == 1
    order = world.finale_order(f"APP-{request_id}")  # exactly one
    assert lines_of(order) == [(url, Decimal(5), Decimal(1))]
    stored = world.request(request_id)
    assert stored["finale_order_id"] == order["orderId"]
    assert stored["finale_order_url"] == order["orderUrl"]
    assert stored["sync_status"] == "synced" and stored["sync_error"] is None
    assert outcome(summaries[-1], request_id) == "created"
    if runs == 2:
        # The first run gave up (Finale did not answer) and left the request for later.
        first = summaries[0].requests[0]
        assert first["outcome"] == "failed" and first["sync_status"] == "pending"
        assert "retried on the next run" in first["error"]
        assert summaries[0].status == "failed"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        pytest.param("sku", "unknown product line 2: SKU 'NO-SUCH-SKU'", id="unknown-sku"),
        pytest.param("vendor", "vendor '424242' is not a Finale supplier", id="unknown-vendor"),
        pytest.param("facility", "destination facility 'NOWHERE'", id="unknown-facility"),
    ],
)
def test_an_id_the_warehouse_does_not_know_fails_the_request_before_finale_is_asked(
    world: World, change: str, fragment: str
) -> None:
    vendor = "424242" if change == "vendor" else world.vendor()
    ((sku, _),) = world.products(1)
    second = "NO-SUCH-SKU" if change == "sku" else sku
    facility = "NOWHERE" if change == "facility" else None
    request_id = world.add_request(vendor, [(sku, 1, 1), (second, 2, 1)], facility)
    before = writes(world)

    summary = run(world)

    assert summary.status == "failed" and summary.counts["failed"] == 1
    stored = world.request(request_id)
    assert stored["sync_status"] == "failed"
    assert fragment in stored["sync_error"]
    assert stored["finale_order_id"] is None
    assert writes(world) == before
    assert world.finale_orders(f"APP-{request_id}") == []


def test_a_request_finale_refuses_carries_its_message_and_waits_for_a_change(
    world: World,
) -> None:
    disabled = world.vendor(enabled=False)
    assert disabled == "777001"
    ((sku, _),) = world.products(1)
    request_id = world.add_request(disabled, [(sku, 3, 2)])

    first = run(world)

    stored = world.request(request_id)
    assert outcome(first, request_id) == "failed" and first.status == "failed"
    assert stored["sync_status"] == "failed"
    assert stored["sync_error"] == (
        "Finale refused it: Supplier '777001' is inactive and cannot be used on a purchase order"
    )
    assert world.finale_orders(f"APP-{request_id}") == []

    # Not retried while the request is unchanged: no request even reaches Finale.
    before = world.control.stats()["requests"]["total"]
    second = run(world)
    assert second.requests == [] and second.status == "succeeded"
    assert world.control.stats()["requests"]["total"] == before
    assert world.request(request_id)["sync_error"] == stored["sync_error"]

    # The app fixes the vendor: pushed at once.
    with world.app.begin() as conn:
        conn.execute(
            sa.text("UPDATE purchase_order_requests SET vendor_party_id = :v WHERE id = :id"),
            {"v": world.vendor(), "id": request_id},
        )
    third = run(world)
    assert outcome(third, request_id) == "created"
    fixed = world.request(request_id)
    assert fixed["sync_status"] == "synced" and fixed["sync_error"] is None
    assert world.finale_order(f"APP-{request_id}")["statusId"] == "ORDER_CREATED"


def test_edits_to_a_draft_are_pushed_keeping_finales_line_urls(world: World) -> None:
    vendor = world.vendor()
    (sku1, url1), (sku2, _), (sku3, url3) = world.products(3)
    request_id = world.add_request(vendor, [(sku1, 1, 1), (sku2, 2, 2)])
    run(world)
    created = world.finale_order(f"APP-{request_id}")

    world.replace_lines(request_id, [(sku1, 10, "1.25"), (sku3, 7, None)])
    summary = run(world)

    assert outcome(summary, request_id) == "updated"
    order = world.finale_order(f"APP-{request_id}")
    assert lines_of(order) == [
        (url1, Decimal(10), Decimal("1.25")),
        (url3, Decimal(7), None),
    ]
    assert [i["orderItemUrl"] for i in order["orderItemList"]] == [
        i["orderItemUrl"] for i in created["orderItemList"]
    ]
    stored = world.request(request_id)
    assert stored["sync_status"] == "synced" and stored["finale_status"] == "ORDER_CREATED"
    assert outcome(run(world), request_id) == "unchanged"


@pytest.mark.parametrize(
    ("actions", "status"),
    [
        pytest.param(["lock"], "ORDER_LOCKED", id="locked"),
        pytest.param(["lock", "complete"], "ORDER_COMPLETED", id="completed"),
        pytest.param(["cancel"], "ORDER_CANCELLED", id="cancelled"),
    ],
)
def test_status_changes_in_finale_flow_back_to_the_request(
    world: World, actions: list[str], status: str
) -> None:
    ((sku, _),) = world.products(1)
    request_id = world.add_request(world.vendor(), [(sku, 1, 1)])
    run(world)
    for action in actions:
        world.finale_action(f"APP-{request_id}", action)

    summary = run(world)

    assert outcome(summary, request_id) == "refreshed"
    stored = world.request(request_id)
    assert stored["finale_status"] == status and stored["sync_status"] == "synced"
    assert world.conflicts(request_id) == []
    if status in ("ORDER_COMPLETED", "ORDER_CANCELLED"):
        # Final in Finale and unchanged in the app: not even looked at again.
        assert run(world).requests == []


def test_an_edit_after_finale_locked_the_order_is_a_conflict_and_not_pushed(
    world: World,
) -> None:
    (sku1, url1), (sku2, _) = world.products(2)
    request_id = world.add_request(world.vendor(), [(sku1, 4, 1)])
    run(world)
    world.finale_action(f"APP-{request_id}", "lock")
    world.replace_lines(request_id, [(sku1, 40, 1), (sku2, 1, 1)])
    before = writes(world)

    summary = run(world)

    assert outcome(summary, request_id) == "conflict"
    assert writes(world) == before, "nothing was written to Finale"
    order = world.finale_order(f"APP-{request_id}")
    assert lines_of(order) == [(url1, Decimal(4), Decimal(1))]
    stored = world.request(request_id)
    assert stored["sync_status"] == "conflict" and stored["finale_status"] == "ORDER_LOCKED"
    assert "the edit was NOT sent to Finale" in stored["sync_error"]
    [conflict] = world.conflicts(request_id)
    assert conflict["finale_status"] == "ORDER_LOCKED" and conflict["resolved_at"] is None
    assert conflict["app_hash"] != conflict["synced_hash"]

    # Recorded once: the next run finds the same conflict and adds nothing.
    assert outcome(run(world), request_id) == "unchanged"
    assert len(world.conflicts(request_id)) == 1

    # The app brings the request back in line with Finale: the conflict is resolved.
    world.replace_lines(request_id, [(sku1, 4, 1)])
    assert outcome(run(world), request_id) == "unchanged"
    assert world.request(request_id)["sync_status"] == "synced"
    assert world.conflicts(request_id)[0]["resolved_at"] is not None


def test_ready_to_commit_locks_the_order_through_its_action_link(world: World) -> None:
    ((sku, _),) = world.products(1)
    drafted = world.add_request(world.vendor(), [(sku, 1, 1)])
    at_once = world.add_request(world.vendor(), [(sku, 2, 1)], status="ready_to_commit")
    first = run(world)
    assert outcome(first, drafted) == "created" and outcome(first, at_once) == "locked"
    assert world.finale_order(f"APP-{at_once}")["statusId"] == "ORDER_LOCKED"

    world.set_status(drafted, "ready_to_commit")
    second = run(world)

    assert outcome(second, drafted) == "locked"
    assert world.finale_order(f"APP-{drafted}")["statusId"] == "ORDER_LOCKED"
    assert world.request(drafted)["finale_status"] == "ORDER_LOCKED"
    assert world.control.stats()["requests"]["action"] == 2
    assert outcome(run(world), drafted) == "unchanged"


def test_cancelling_a_request_cancels_its_draft_but_not_a_committed_order(
    world: World,
) -> None:
    ((sku, _),) = world.products(1)
    draft = world.add_request(world.vendor(), [(sku, 1, 1)])
    committed = world.add_request(world.vendor(), [(sku, 1, 1)], status="ready_to_commit")
    run(world)
    world.set_status(draft, "cancelled")
    world.set_status(committed, "cancelled")

    summary = run(world)

    assert outcome(summary, draft) == "cancelled"
    assert world.finale_order(f"APP-{draft}")["statusId"] == "ORDER_CANCELLED"
    assert outcome(summary, committed) == "conflict"
    assert world.finale_order(f"APP-{committed}")["statusId"] == "ORDER_LOCKED"
    assert "cancel it in Finale" in world.request(committed)["sync_error"]


def test_a_line_finale_keeps_without_its_product_fails_the_request(world: World) -> None:
    (sku1, _), (sku2, _) = world.products(2)
    world.control.delete("product", [sku2])  # gone from Finale since the last sync
    request_id = world.add_request(world.vendor(), [(sku1, 1, 1), (sku2, 1, 1)])

    summary = run(world)

    assert outcome(summary, request_id) == "failed"
    stored = world.request(request_id)
    assert stored["sync_status"] == "failed"
    assert f"line 2 ({sku2})" in stored["sync_error"]
    assert "without its product" in stored["sync_error"]
    assert stored["finale_order_id"] == f"APP-{request_id}"  # the draft exists; not lost
    # Not retried until the request changes.
    assert outcome(run(world), request_id) == "unchanged"
    world.replace_lines(request_id, [(sku1, 1, 1)])
    assert outcome(run(world), request_id) == "updated"
    assert world.request(request_id)["sync_status"] == "synced"


def test_a_second_run_while_one_holds_the_lock_is_skipped(world: World) -> None:
    ((sku, _),) = world.products(1)
    request_id = world.add_request(world.vendor(), [(sku, 1, 1)])
    with run_lock(world.app):
        summary = run(world)
    assert summary.status == "skipped" and "another write-back run" in (summary.error or "")
    assert summary.requests == []
    assert world.request(request_id)["finale_order_id"] is None


def test_an_edit_seen_while_finale_was_unreachable_is_judged_on_the_next_run(
    world: World,
) -> None:
    ((sku, url),) = world.products(1)
    request_id = world.add_request(world.vendor(), [(sku, 2, 1)])
    run(world)
    world.finale_action(f"APP-{request_id}", "cancel")
    run(world)  # Finale's cancel flows back; the order is final now
    world.replace_lines(request_id, [(sku, 9, 1)])
    world.control.set_faults("503:1.0")

    down = run(world, max_retries=0)

    assert outcome(down, request_id) == "failed" and down.status == "failed"
    stored = world.request(request_id)
    assert "retried on the next run" in stored["sync_error"]
    assert stored["sync_status"] == "synced" and world.conflicts(request_id) == []

    world.control.set_faults("")
    back = run(world)

    assert outcome(back, request_id) == "conflict"
    assert world.request(request_id)["sync_status"] == "conflict"
    assert len(world.conflicts(request_id)) == 1
    assert lines_of(world.finale_order(f"APP-{request_id}")) == [(url, Decimal(2), Decimal(1))]


def test_an_order_id_taken_by_another_kind_of_order_fails_the_request(world: World) -> None:
    ((sku, _),) = world.products(1)
    request_id = world.add_request(world.vendor(), [(sku, 1, 1)])
    world.control.add_records(
        "order",
        [
            {
                "orderId": f"APP-{request_id}",
                "orderUrl": f"/acme/api/order/APP-{request_id}",
                "orderTypeId": "SALES_ORDER",
                "statusId": "ORDER_CREATED",
                "lastUpdatedDate": "2026-01-01T00:00:00",
            }
        ],
    )

    summary = run(world)

    assert outcome(summary, request_id) == "failed"
    stored = world.request(request_id)
    assert (
        f"orderId 'APP-{request_id}' is taken in Finale by a SALES_ORDER" in (stored["sync_error"])
    )
    assert stored["finale_order_id"] is None
    assert [o["orderTypeId"] for o in world.finale_orders(f"APP-{request_id}")] == ["SALES_ORDER"]


def test_an_order_created_before_a_later_step_failed_is_still_recorded(world: World) -> None:
    ((sku, _),) = world.products(1)
    request_id = world.add_request(world.vendor(), [(sku, 1, 1)], status="ready_to_commit")
    # The create goes through; the lock is applied but its answer lost, and no retry is left.
    world.control.lose_answers(1, "timeout", writes="action")

    first = run(world, timeout_seconds=1.0, max_retries=0)

    assert outcome(first, request_id) == "failed"
    stored = world.request(request_id)
    assert stored["finale_order_id"] == f"APP-{request_id}", "the created order is not lost"
    assert stored["synced_hash"] and stored["sync_status"] == "pending"
    assert "retried on the next run" in stored["sync_error"]

    # Finale did lock it: the next run sees that, and it is no conflict.
    second = run(world)
    assert outcome(second, request_id) == "refreshed"
    stored = world.request(request_id)
    assert stored["finale_status"] == "ORDER_LOCKED" and stored["sync_status"] == "synced"
    assert stored["sync_error"] is None and world.conflicts(request_id) == []
    assert len(world.finale_orders(f"APP-{request_id}")) == 1
