"""Decide and do what one request needs in Finale; the result says what to write back.

The rules (``docs/supabase.md``):

- never pushed: resolve its ids through the warehouse, create a draft purchase order with
  ``orderId`` = ``APP-<id>``; a create refused as a duplicate (an earlier attempt stored it
  and its answer was lost) reads that order and carries on with it;
- Finale's order still a draft (``ORDER_CREATED``): the app's edits are pushed, a
  ``ready_to_commit`` request is locked, a ``cancelled`` one cancelled;
- Finale locked, completed or cancelled it: Finale wins. The request shows Finale's status; an
  app edit not pushed by then (or a cancel of a committed order) is a conflict, recorded once;
- Finale refuses a request (a 4xx, a 200 with an error body, a line that lost its product):
  ``failed`` with Finale's message, not retried until the app changes the request. Finale
  unreachable (after the connector's retries): the request stays ``pending`` for the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from connectors.finale import (
    AuthError,
    DuplicateOrderError,
    FatalError,
    FinaleClient,
    FinaleError,
    RetryableError,
)
from writeback import tables as t
from writeback.orders import find_order, lost_product_links, matches, new_order, order_fields
from writeback.requests import PurchaseOrderRequest
from writeback.resolve import Unresolvable, resolve

log = logging.getLogger(__name__)

CREATED, LOCKED = "ORDER_CREATED", "ORDER_LOCKED"
CANCELLED_IN_FINALE = "ORDER_CANCELLED"

#: Every outcome a processed request can end with, in the order counts are shown.
OUTCOMES = (
    "created",  # a draft order was created in Finale (or found, after a lost answer)
    "updated",  # the app's edits were pushed to the draft
    "locked",  # the order was locked (committed) in Finale
    "cancelled",  # the draft was cancelled in Finale (the app cancelled the request)
    "refreshed",  # nothing pushed; Finale's status changed and was copied to the request
    "unchanged",  # nothing to do
    "failed",  # refused (by Finale or for an unknown id), or Finale unreachable
    "conflict",  # the app changed a request Finale no longer lets change: recorded
)


@dataclass
class Decision:
    """What happened to one request and what to write back to it.

    Attributes:
        request_id: the request.
        outcome: one of ``OUTCOMES``.
        changes: columns of ``purchase_order_requests`` to set.
        conflict: a conflict to record (``purchase_order_request_conflicts`` columns).
        resolve_conflicts: close the request's open conflicts (it agrees with Finale again).
        looked: False when the request was not really looked at (Finale unreachable), so
            ``synced_at`` stays and an app edit it may hold is still seen next run.
    """

    request_id: int
    outcome: str
    changes: dict[str, Any] = field(default_factory=dict)
    conflict: dict[str, Any] | None = None
    resolve_conflicts: bool = False
    looked: bool = True

    @property
    def message(self) -> str | None:
        """The request's ``sync_error`` after this decision, if any."""
        return self.changes.get("sync_error")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready line for run summaries."""
        return {
            "request_id": self.request_id,
            "outcome": self.outcome,
            "finale_order_id": self.changes.get("finale_order_id"),
            "finale_status": self.changes.get("finale_status"),
            "sync_status": self.changes.get("sync_status"),
            "error": self.changes.get("sync_error"),
        }


def _order_columns(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "finale_order_id": str(order["orderId"]),
        "finale_order_url": order.get("orderUrl"),
        "finale_status": order.get("statusId"),
    }


def _finale_message(exc: FinaleError) -> str:
    """Finale's own words first; the connector's advice after them."""
    if exc.server_message:
        return f"Finale refused it: {exc.server_message}"
    return str(exc)


class RequestPusher:
    """Processes requests one by one against Finale and the warehouse (one at a time: it
    keeps what the current request has reached in Finale).

    Args:
        client: the Finale client (its retries cover transient failures of one call).
        warehouse: engine on the warehouse the Finale sync loads (vendors, products, ...).
    """

    def __init__(self, client: FinaleClient, warehouse: sa.Engine) -> None:
        self.client = client
        self.warehouse = warehouse
        # What the request being processed has reached in Finale, so a failure part-way
        # (a lock refused after the create) still records the order (one request at a time).
        self._order: dict[str, Any] | None = None
        self._pushed = False

    def _reached(self, order: dict[str, Any], *, pushed: bool = False) -> dict[str, Any]:
        self._order = order
        self._pushed = self._pushed or pushed
        return order

    def _known(self, content: str) -> dict[str, Any]:
        """Columns for what Finale holds already, for a decision made after a failure."""
        if self._order is None:
            return {}
        known = _order_columns(self._order)
        if self._pushed:
            known["synced_hash"] = content
        return known

    def process(self, request: PurchaseOrderRequest) -> Decision:
        """Do what ``request`` needs and say what to write back.

        Raises:
            AuthError: Finale rejected the credentials: every other request would fail the
                same way, so the run stops.
        """
        content = request.content_hash
        self._order, self._pushed = None, False
        try:
            if request.finale_order_url is None:
                return self._first_push(request, content)
            return self._follow(request, content)
        except AuthError:
            raise
        except RetryableError as exc:
            message = f"Finale could not be reached, the request is retried on the next run: {exc}"
            log.warning("request %s: %s", request.id, message)
            return Decision(
                request.id,
                "failed",
                {
                    **self._known(content),
                    "sync_status": request.sync_status if request.finale_order_url else t.PENDING,
                    "sync_error": message,
                },
                looked=False,
            )
        except FatalError as exc:
            return self._failed(request, content, _finale_message(exc))
        except Unresolvable as exc:
            return self._failed(request, content, str(exc))

    # -- never pushed --------------------------------------------------------------------------

    def _first_push(self, request: PurchaseOrderRequest, content: str) -> Decision:
        if request.sync_status == t.FAILED and request.synced_hash == content:
            return Decision(
                request.id, "unchanged", {"sync_status": t.FAILED, "sync_error": request.sync_error}
            )
        with self.warehouse.connect() as conn:
            resolved = resolve(conn, request)
        body = new_order(request, resolved)
        try:
            order = self._reached(self.client.create_order(body), pushed=True)
            log.info("request %s: created Finale order %s", request.id, order.get("orderId"))
        except AuthError:
            raise
        except FatalError as exc:
            # A duplicate orderId means an earlier attempt stored the order and its answer
            # was lost. Whatever words Finale used for the refusal, an order with our orderId
            # is ours to carry on with.
            found = find_order(self.client, request.order_id)
            if found is None:
                if isinstance(exc, DuplicateOrderError):
                    raise FatalError(
                        f"Finale says orderId {request.order_id!r} is in use, but no order "
                        "with it can be read back; check the order in Finale"
                    ) from exc
                raise
            if found.get("orderTypeId") != "PURCHASE_ORDER":
                raise FatalError(
                    f"orderId {request.order_id!r} is taken in Finale by a "
                    f"{found.get('orderTypeId')}, not this request's purchase order; rename "
                    "that order in Finale"
                ) from exc
            log.info(
                "request %s: Finale already has order %s (an earlier attempt stored it); using it",
                request.id,
                request.order_id,
            )
            order = self._reached(found)
            if order.get("statusId") == CREATED:
                wanted = order_fields(request, resolved, order.get("orderItemList"))
                if not matches(order, wanted):
                    updated = self.client.update_order_fields(str(order["orderUrl"]), wanted)
                    order = self._reached(updated, pushed=True)
                else:
                    self._pushed = True
        return self._after_push(request, content, order, "created")

    # -- pushed before -------------------------------------------------------------------------

    def _follow(self, request: PurchaseOrderRequest, content: str) -> Decision:
        assert request.finale_order_url is not None
        order = self._reached(self.client.get(request.finale_order_url))
        status = order.get("statusId")
        if status == CREATED:
            return self._draft(request, content, order)
        return self._finale_wins(request, content, order)

    def _draft(
        self, request: PurchaseOrderRequest, content: str, order: dict[str, Any]
    ) -> Decision:
        if request.status == t.CANCELLED:
            cancelled = self.client.order_action(order, "cancel")
            return Decision(
                request.id,
                "cancelled",
                {
                    **_order_columns(cancelled),
                    "sync_status": t.SYNCED,
                    "sync_error": None,
                    "synced_hash": content,
                },
            )
        if content == request.synced_hash:
            if request.sync_status == t.FAILED:  # refused before: wait for a change
                return Decision(
                    request.id,
                    "unchanged",
                    {
                        **_order_columns(order),
                        "sync_status": t.FAILED,
                        "sync_error": request.sync_error,
                    },
                )
            return self._after_push(request, content, order, "unchanged")
        with self.warehouse.connect() as conn:
            resolved = resolve(conn, request)
        wanted = order_fields(request, resolved, order.get("orderItemList"))
        updated = self._reached(
            self.client.update_order_fields(str(order["orderUrl"]), wanted), pushed=True
        )
        log.info("request %s: pushed the app's edits to order %s", request.id, order["orderId"])
        return self._after_push(request, content, updated, "updated")

    def _after_push(
        self, request: PurchaseOrderRequest, content: str, order: dict[str, Any], outcome: str
    ) -> Decision:
        """The order holds the request's content: check it, lock it if asked, write back."""
        columns = _order_columns(order)
        lost = lost_product_links(request, order)
        if lost:
            return Decision(
                request.id,
                "failed",
                {
                    **columns,
                    "sync_status": t.FAILED,
                    "synced_hash": content,
                    "sync_error": (
                        f"Finale kept {', '.join(lost)} of order {columns['finale_order_id']} "
                        "without its product (the product URL did not resolve: the product was "
                        "probably deleted in Finale). Fix the line; the order stays a draft"
                    ),
                },
            )
        if request.status == t.READY_TO_COMMIT and order.get("statusId") == CREATED:
            order = self.client.order_action(order, "lock")
            outcome = "locked"
            columns = _order_columns(order)
        if outcome == "unchanged" and columns["finale_status"] != request.finale_status:
            outcome = "refreshed"
        return Decision(
            request.id,
            outcome,
            {**columns, "sync_status": t.SYNCED, "sync_error": None, "synced_hash": content},
            resolve_conflicts=True,
        )

    def _finale_wins(
        self, request: PurchaseOrderRequest, content: str, order: dict[str, Any]
    ) -> Decision:
        columns = _order_columns(order)
        status = columns["finale_status"]
        reasons = []
        if content != request.synced_hash:
            reasons.append(
                "the request was edited after it was last pushed, but Finale's order is "
                f"{status} and no longer takes changes: the edit was NOT sent to Finale"
            )
        if request.status == t.CANCELLED and status != CANCELLED_IN_FINALE:
            reasons.append(
                f"the request is cancelled, but Finale's order is {status}: cancel it in "
                "Finale if it should not go ahead"
            )
        if not reasons:
            outcome = "refreshed" if status != request.finale_status else "unchanged"
            keep_failed = request.sync_status == t.FAILED
            return Decision(
                request.id,
                outcome,
                {
                    **columns,
                    "sync_status": t.FAILED if keep_failed else t.SYNCED,
                    "sync_error": request.sync_error if keep_failed else None,
                },
                resolve_conflicts=not keep_failed,
            )
        detail = (
            f"Finale wins: {'; and '.join(reasons)}. Finale's order "
            f"{columns['finale_order_id']} is what stands; change it in Finale, or bring the "
            "request back in line with it"
        )
        conflict = {
            "request_id": request.id,
            "finale_order_id": columns["finale_order_id"],
            "finale_status": status,
            "app_status": request.status,
            "app_hash": content,
            "synced_hash": request.synced_hash,
            "detail": detail,
        }
        return Decision(
            request.id,
            "conflict",
            {**columns, "sync_status": t.CONFLICT, "sync_error": detail},
            conflict=conflict,
        )

    # -- failures ------------------------------------------------------------------------------

    def _failed(self, request: PurchaseOrderRequest, content: str, message: str) -> Decision:
        log.warning("request %s failed: %s", request.id, message)
        return Decision(
            request.id,
            "failed",
            {
                **self._known(content),
                "sync_status": t.FAILED,
                "sync_error": message,
                "synced_hash": content,
            },
        )
