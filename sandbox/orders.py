"""Order writes: create, update (whole object back to its URL) and status actions.

Finale's rules as pinned in ``docs/finale-contract.md``:

- Create assigns ``orderUrl``, item URLs, action URLs, ``ORDER_CREATED`` and the dates; an
  ``orderId`` already in use answers 200 with ``errorMessage`` and changes nothing.
- Update replaces the editable fields; completed or cancelled orders answer 400.
- Actions: lock CREATED->LOCKED, complete LOCKED->COMPLETED, cancel CREATED|LOCKED->CANCELLED;
  ``edit`` (valid while CREATED or LOCKED) applies the posted object like an update.
  An action not valid in the current status answers 400.
- A line whose ``productUrl`` does not resolve is kept but loses its product link.
- (ours) A purchase order whose SUPPLIER role names a party that does not exist or is
  ``PARTY_DISABLED`` is refused with 200 and an ``errorMessage``, and nothing is stored:
  Finale's "inactive vendor" refusal, in the shape of its other failed writes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sandbox import timefmt
from sandbox.columns import Table, hashable
from sandbox.data import ORDER_ACTIONS, ORDER_TYPES
from sandbox.store import ApiError, SandboxStore

EDITABLE_FIELDS = (
    "orderDate",
    "dueDate",
    "destinationFacilityUrl",
    "originFacilityUrl",
    "orderRoleList",
    "orderItemList",
    "orderAdjustmentList",
)
FINAL_STATUSES = ("ORDER_COMPLETED", "ORDER_CANCELLED")


def create_order(store: SandboxStore, body: Any) -> dict[str, Any]:
    """Create an order from a posted object; returns the stored order or an error body.

    Raises:
        ApiError: 400 for a malformed body.
    """
    body = _object(body)
    with store.lock:
        table = store.table("order")
        order_type = body.get("orderTypeId")
        if order_type not in ORDER_TYPES:
            raise ApiError(400, f"orderTypeId must be one of {', '.join(ORDER_TYPES)}")
        order_id = body.get("orderId")
        if order_id is None or order_id == "":
            order_id = _next_order_id(table)
        elif not isinstance(order_id, str | int) or isinstance(order_id, bool):
            raise ApiError(400, "orderId must be a string")
        order_id = str(order_id)
        if order_id in table.key_index():
            # Finale answers this with 200 and an error body, not 409.
            return {"errorMessage": f"Order ID '{order_id}' is already in use"}
        refused = _supplier_refusal(store, order_type, body)
        if refused:
            return {"errorMessage": refused}
        now = store.now()
        order_url = f"{store.api}/order/{quote(order_id, safe='')}"
        values: dict[str, Any] = {
            "orderId": order_id,
            "orderUrl": order_url,
            "orderTypeId": order_type,
            "statusId": "ORDER_CREATED",
            "orderDate": now // timefmt.DAY * timefmt.DAY,
            "dueDate": None,
            "receiveDate": None,
            "createdDate": now,
            "lastUpdatedDate": now,
            "orderRoleList": [],
            "orderItemList": [],
            "orderAdjustmentList": [],
        }
        values.update(_editable(store, body, order_url, existing_items=[]))
        row = table.append(values)
        store.bump("order")
        return table.row(row)


def update_order(store: SandboxStore, table: Table, row: int, body: Any) -> dict[str, Any]:
    """Apply a posted order object to an existing order and return the stored order.

    Raises:
        ApiError: 400 when the order is completed or cancelled, or the body is malformed.
    """
    body = _object(body)
    with store.lock:
        status = table.columns["statusId"].get(row)
        order_id = table.columns["orderId"].get(row)
        if status in FINAL_STATUSES:
            raise ApiError(400, f"Order {order_id} is {status} and cannot be modified")
        refused = _supplier_refusal(store, table.columns["orderTypeId"].get(row), body)
        if refused:
            return {"errorMessage": refused}
        order_url = table.columns["orderUrl"].get(row)
        existing = table.columns["orderItemList"].get(row)
        changes = _editable(store, body, order_url, existing_items=existing)
        if changes:
            for field, value in changes.items():
                table.columns[field].set(row, value)
            table.columns["lastUpdatedDate"].set(row, store.now())
            store.bump("order")
        return table.row(row)


def order_action(
    store: SandboxStore, table: Table, row: int, action: str, body: Any
) -> dict[str, Any]:
    """Run a status action (``lock``, ``complete``, ``cancel``, ``edit``) on an order.

    Raises:
        ApiError: 400 when the action is not valid in the order's current status.
    """
    with store.lock:
        status = table.columns["statusId"].get(row)
        if status not in ORDER_ACTIONS[action]:
            order_id = table.columns["orderId"].get(row)
            raise ApiError(
                400, f"Action '{action}' is not valid for order {order_id} in status {status}"
            )
        if action == "edit":
            return update_order(store, table, row, body)
        now = store.now()
        new_status = {
            "lock": "ORDER_LOCKED",
            "complete": "ORDER_COMPLETED",
            "cancel": "ORDER_CANCELLED",
        }[action]
        table.columns["statusId"].set(row, new_status)
        if action == "complete":
            table.columns["receiveDate"].set(row, now)
        table.columns["lastUpdatedDate"].set(row, now)
        store.bump("order")
        return table.row(row)


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return {k: v for k, v in body.items() if k != "sessionSecret"}


def _supplier_refusal(store: SandboxStore, order_type: Any, body: dict[str, Any]) -> str | None:
    """Finale's message refusing a purchase order's supplier, or None when it is fine."""
    if order_type != "PURCHASE_ORDER" or not isinstance(body.get("orderRoleList"), list):
        return None
    parties = store.table("partygroup")
    index = parties.key_index()
    for role in body["orderRoleList"]:
        if not isinstance(role, dict) or role.get("roleTypeId") != "SUPPLIER":
            continue
        party_id = role.get("partyId")
        row = index.get(party_id) if hashable(party_id) else None
        if row is None:
            return f"Supplier '{party_id}' does not exist"
        if parties.columns["statusId"].get(row) == "PARTY_DISABLED":
            return f"Supplier '{party_id}' is inactive and cannot be used on a purchase order"
    return None


def _next_order_id(table: Table) -> str:
    numbers = [int(k) for k in table.key_index() if isinstance(k, str) and k.isdigit()]
    return str(max(numbers, default=9_999) + 1)


def _date(field: str, value: Any, store: SandboxStore) -> int | None:
    if value is None:
        return None
    try:
        return timefmt.parse_timestamp(value, store.tz)
    except ValueError:
        raise ApiError(400, f"{field} {value!r} is not a timestamp") from None


def _list_of_objects(field: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ApiError(400, f"{field} must be a list of objects")
    return value


def _editable(
    store: SandboxStore,
    body: dict[str, Any],
    order_url: str,
    existing_items: list[dict[str, Any]],
) -> dict[str, Any]:
    """The editable fields present in ``body``, normalised to the stored form."""
    changes: dict[str, Any] = {}
    for field in ("orderDate", "dueDate"):
        if field in body:
            changes[field] = _date(field, body[field], store)
    for field in ("destinationFacilityUrl", "originFacilityUrl"):
        if field in body:
            if body[field] is not None and not isinstance(body[field], str):
                raise ApiError(400, f"{field} must be a URL string or null")
            changes[field] = body[field]
    if "orderRoleList" in body:
        changes["orderRoleList"] = [
            {"roleTypeId": r.get("roleTypeId"), "partyId": r.get("partyId")}
            for r in _list_of_objects("orderRoleList", body["orderRoleList"])
        ]
    if "orderAdjustmentList" in body:
        changes["orderAdjustmentList"] = [
            {"amount": a.get("amount"), "description": a.get("description")}
            for a in _list_of_objects("orderAdjustmentList", body["orderAdjustmentList"])
        ]
    if "orderItemList" in body:
        items = _list_of_objects("orderItemList", body["orderItemList"])
        changes["orderItemList"] = _items(store, items, order_url, existing_items)
    return changes


def _items(
    store: SandboxStore,
    items: list[dict[str, Any]],
    order_url: str,
    existing: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    products = store.table("product")
    by_url = products.url_index()
    by_id = products.key_index()
    item_prefix = f"{order_url}/item/"
    # An injected order may hold anything in its item list: only string item URLs count.
    known = {
        i["orderItemUrl"]
        for i in (existing if isinstance(existing, list) else [])
        if isinstance(i, dict) and isinstance(i.get("orderItemUrl"), str)
    }
    used = [
        int(u[len(item_prefix) :])
        for u in known
        if u.startswith(item_prefix) and u[len(item_prefix) :].isdigit()
    ]
    next_seq = max(used, default=0) + 1
    out = []
    for item in items:
        url = item.get("orderItemUrl")
        if not isinstance(url, str) or url not in known:
            url = f"{item_prefix}{next_seq}"
            next_seq += 1
        product_id = item.get("productId")
        product_url = item.get("productUrl")
        if product_url is not None:
            row = by_url.get(product_url) if hashable(product_url) else None
            if row is None:
                product_url = None  # kept, but loses its product link (no error, as Finale)
            else:
                product_id = products.columns["productId"].get(row)
        elif product_id is not None and hashable(product_id) and product_id in by_id:
            product_url = products.columns["productUrl"].get(by_id[product_id])
        out.append(
            {
                "orderItemUrl": url,
                "productId": product_id,
                "productUrl": product_url,
                "quantity": item.get("quantity"),
                "unitPrice": item.get("unitPrice"),
            }
        )
    return out
