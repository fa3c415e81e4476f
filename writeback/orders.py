"""The Finale side of a request: the order body, reading an order back, comparing them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from connectors.finale import FinaleClient
from writeback.requests import PurchaseOrderRequest
from writeback.resolve import Resolved

#: The fields of an order write-back owns (the rest of the order is Finale's).
PUSHED_FIELDS = ("destinationFacilityUrl", "orderRoleList", "orderItemList")


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def order_fields(
    request: PurchaseOrderRequest,
    resolved: Resolved,
    current_items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The pushed fields of the request's order.

    ``current_items`` (the order's lines in Finale) keeps each line's ``orderItemUrl`` by
    position, so an edit changes Finale's lines instead of replacing them.
    """
    current = current_items or []
    items = []
    for index, line in enumerate(sorted(request.lines, key=lambda x: x.line_no)):
        item: dict[str, Any] = {
            "productUrl": resolved.product_urls[line.line_no],
            "quantity": _number(line.quantity),
            "unitPrice": _number(line.unit_price),
        }
        if index < len(current) and isinstance(current[index], dict):
            url = current[index].get("orderItemUrl")
            if url:
                item = {"orderItemUrl": url, **item}
        items.append(item)
    return {
        "destinationFacilityUrl": resolved.facility_url,
        "orderRoleList": [{"roleTypeId": "SUPPLIER", "partyId": resolved.vendor_party_id}],
        "orderItemList": items,
    }


def new_order(request: PurchaseOrderRequest, resolved: Resolved) -> dict[str, Any]:
    """The body that creates the request's draft purchase order."""
    return {
        "orderId": request.order_id,
        "orderTypeId": "PURCHASE_ORDER",
        **order_fields(request, resolved),
    }


def _comparable(order: dict[str, Any]) -> tuple[Any, ...]:
    roles = sorted(
        str(r.get("partyId"))
        for r in order.get("orderRoleList") or []
        if isinstance(r, dict) and r.get("roleTypeId") == "SUPPLIER"
    )
    items = [
        (
            i.get("productUrl"),
            None if i.get("quantity") is None else Decimal(str(i["quantity"])).normalize(),
            None if i.get("unitPrice") is None else Decimal(str(i["unitPrice"])).normalize(),
        )
        for i in order.get("orderItemList") or []
        if isinstance(i, dict)
    ]
    return order.get("destinationFacilityUrl"), roles, items


def matches(order: dict[str, Any], fields: dict[str, Any]) -> bool:
    """True when Finale's order already holds the pushed ``fields``."""
    return _comparable(order) == _comparable(fields)


def lost_product_links(request: PurchaseOrderRequest, order: dict[str, Any]) -> list[str]:
    """SKUs of lines Finale kept without their product (it does that silently for a
    ``productUrl`` it cannot resolve, e.g. a product deleted since the last sync)."""
    stored = order.get("orderItemList") or []
    lines = sorted(request.lines, key=lambda x: x.line_no)
    lost = []
    for index, line in enumerate(lines):
        item = stored[index] if index < len(stored) else None
        if not isinstance(item, dict) or not item.get("productUrl"):
            lost.append(f"line {line.line_no} ({line.sku.strip()})")
    return lost


def find_order(client: FinaleClient, order_id: str) -> dict[str, Any] | None:
    """The order with ``orderId`` = ``order_id`` as Finale stores it, or None.

    Found with a filtered read of the order collection (``orderId`` is filterable), then read
    whole from its ``orderUrl``: the URL comes from Finale, never built from the id. A server
    that ignored the filter would page every order: the match is checked here all the same.
    """
    for frame in client.iter_collection("order", filter={"orderId": order_id}, page_size=1000):
        for row in frame.to_dict("records"):
            if str(row.get("orderId")) == order_id and row.get("orderUrl"):
                return client.get(str(row["orderUrl"]))
    return None
