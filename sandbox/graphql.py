"""GraphQL reads: ``productViewConnection``, ``orderViewConnection``, ``partyViewConnection``.

Relay connections (``first``/``after``, ``edges { node cursor }``, ``pageInfo``) in creation
order. Scalars are display-formatted like Finale's screens ("1,200", "--", "11/28/2024",
"Active") unless ``formatter: "none"`` is given on the connection or on the field itself.
Errors come back as HTTP 200 with ``{"data": null, "errors": [{"message": ...}]}``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sandbox.data import ORDER_TYPES
from sandbox.gqlparse import Field, GraphQLError, Operation, parse, resolve
from sandbox.store import SandboxStore

DEFAULT_FIRST = 100

LABELS = {
    "PRODUCT_ACTIVE": "Active",
    "PRODUCT_INACTIVE": "Inactive",
    "PURCHASE_ORDER": "Purchase",
    "SALES_ORDER": "Sale",
    "ORDER_CREATED": "Draft",
    "ORDER_LOCKED": "Committed",
    "ORDER_COMPLETED": "Completed",
    "ORDER_CANCELLED": "Canceled",
    "PARTY_ENABLED": "Active",
    "PARTY_DISABLED": "Inactive",
    "SUPPLIER": "Supplier",
    "CUSTOMER": "Customer",
    "CARRIER": "Carrier",
}


def display_number(value: Any) -> str:
    """Finale's display form of a number: ``1,200``, ``12.50``, ``--`` when empty."""
    if value is None:
        return "--"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def display_date(value: Any) -> str:
    """``2024-11-28T05:16:14`` -> ``11/28/2024``; ``--`` when empty."""
    if value is None or value == "":
        return "--"
    if not isinstance(value, str) or len(value) < 10:
        return str(value)  # an injected non-date: shown as it is
    return f"{value[5:7]}/{value[8:10]}/{value[0:4]}"


def _label(value: Any) -> Any:
    if value is None:
        return "--"
    return LABELS.get(value, value) if isinstance(value, str) else str(value)


def _format(kind: str, raw: Any, display: bool) -> Any:
    if not display or kind == "id":
        return raw
    if kind == "number":
        return display_number(raw)
    if kind == "date":
        return display_date(raw)
    if kind == "label":
        return _label(raw)
    if kind == "labels":
        if not isinstance(raw, list):
            return _label(raw)
        return ", ".join(str(_label(r)) for r in raw) or "--"
    return "--" if raw is None or raw == "" else raw  # text


@dataclass(frozen=True)
class NodeType:
    """How to build one node type: scalar fields map to (column, kind), plus objects."""

    name: str
    table: str
    scalars: dict[str, tuple[str, str]]
    objects: tuple[str, ...] = ()


PRODUCT = NodeType(
    "Product",
    "product",
    {
        "productId": ("productId", "id"),
        "productUrl": ("productUrl", "id"),
        "title": ("internalName", "text"),
        "status": ("statusId", "label"),
        "category": ("userCategory", "text"),
        "cost": ("cost", "number"),
        "lastUpdated": ("lastUpdatedDate", "date"),
        "unitsInStock": ("", "number"),
        "unitsOnOrder": ("", "number"),
    },
    ("stockByFacility",),
)
ORDER = NodeType(
    "Order",
    "order",
    {
        "orderId": ("orderId", "id"),
        "orderUrl": ("orderUrl", "id"),
        "type": ("orderTypeId", "label"),
        "status": ("statusId", "label"),
        "orderDate": ("orderDate", "date"),
        "total": ("", "number"),
    },
    ("supplier",),
)
PARTY = NodeType(
    "Party",
    "partygroup",
    {
        "partyId": ("partyId", "id"),
        "partyUrl": ("partyUrl", "id"),
        "name": ("groupName", "text"),
        "roles": ("roleTypeIdList", "labels"),
        "status": ("statusId", "label"),
    },
)


def execute(
    store: SandboxStore,
    query: Any,
    variables: Any = None,
    operation_name: str | None = None,
) -> dict[str, Any]:
    """Run a query and return the GraphQL response object (always for HTTP 200)."""
    try:
        if variables is not None and not isinstance(variables, dict):
            raise GraphQLError("variables must be a JSON object")
        operation = _pick(parse(query), operation_name)
        values = {**operation.variables, **(variables or {})}
        data = {}
        with store.lock:
            for field in operation.selections:
                data[field.key] = _root(store, field, values)
        return {"data": data}
    except GraphQLError as exc:
        return {"data": None, "errors": [{"message": str(exc)}]}


def _pick(operations: list[Operation], name: str | None) -> Operation:
    if name is not None:
        for op in operations:
            if op.name == name:
                return op
        raise GraphQLError(f"Unknown operation named {name!r}")
    if len(operations) > 1:
        raise GraphQLError("Must provide operationName when the query has several operations")
    return operations[0]


def _root(store: SandboxStore, field: Field, variables: dict[str, Any]) -> Any:
    if field.name == "__typename":
        return "Query"
    connections = {
        "productViewConnection": (PRODUCT, False),
        "orderViewConnection": (ORDER, True),
        "partyViewConnection": (PARTY, False),
    }
    if field.name not in connections:
        raise GraphQLError(f'Cannot query field "{field.name}" on type "Query".')
    node_type, takes_type = connections[field.name]
    args = {k: resolve(v, variables) for k, v in field.arguments.items()}
    allowed = {"first", "after", "formatter"} | ({"type"} if takes_type else set())
    unknown = set(args) - allowed
    if unknown:
        raise GraphQLError(f'Unknown argument "{sorted(unknown)[0]}" on field "{field.name}".')
    if field.selections is None:
        raise GraphQLError(f'Field "{field.name}" must have a selection of subfields.')
    first = args.get("first")
    first = DEFAULT_FIRST if first is None else first
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        raise GraphQLError('Argument "first" must be a non-negative integer.')
    first = min(first, store.config.max_entities)
    start = 0 if args.get("after") is None else _decode_cursor(args["after"]) + 1
    display = args.get("formatter") != "none"

    table = store.table(node_type.table)
    mask = table.alive
    if takes_type and args.get("type") is not None:
        wanted = args["type"] if isinstance(args["type"], list) else [args["type"]]
        bad = [t for t in wanted if t not in ORDER_TYPES]
        if bad:
            raise GraphQLError(f"Unknown order type {bad[0]!r}")
        types = table.columns["orderTypeId"].take(np.arange(len(table)))
        mask = mask & np.fromiter(
            (isinstance(t, str) and t in wanted for t in types), dtype=bool, count=len(types)
        )
    rows = np.flatnonzero(mask)
    page = rows[start : start + first]
    end = start + len(page)

    out: dict[str, Any] = {}
    for sel in field.selections:
        if sel.name == "__typename":
            out[sel.key] = f"{node_type.name}ViewConnection"
        elif sel.name == "edges":
            out[sel.key] = _edges(store, node_type, sel, page, start, display, variables)
        elif sel.name == "pageInfo":
            info = {
                "hasNextPage": end < len(rows),
                "hasPreviousPage": start > 0,
                "startCursor": _cursor(start) if len(page) else None,
                "endCursor": _cursor(end - 1) if len(page) else None,
            }
            out[sel.key] = _pick_fields(sel, info, "PageInfo")
        else:
            raise GraphQLError(
                f'Cannot query field "{sel.name}" on type "{node_type.name}ViewConnection".'
            )
    return out


def _pick_fields(sel: Field, values: dict[str, Any], type_name: str) -> dict[str, Any]:
    if sel.selections is None:
        raise GraphQLError(f'Field "{sel.name}" must have a selection of subfields.')
    out = {}
    for sub in sel.selections:
        if sub.name == "__typename":
            out[sub.key] = type_name
        elif sub.name in values:
            out[sub.key] = values[sub.name]
        else:
            raise GraphQLError(f'Cannot query field "{sub.name}" on type "{type_name}".')
    return out


def _cursor(position: int) -> str:
    return base64.b64encode(f"arrayconnection:{position}".encode()).decode()


def _decode_cursor(cursor: Any) -> int:
    try:
        text = base64.b64decode(str(cursor), validate=True).decode()
        prefix, _, number = text.partition(":")
        if prefix != "arrayconnection":
            raise ValueError(text)
        position = int(number)
        if position < 0:
            raise ValueError(text)
        return position
    except (ValueError, UnicodeDecodeError):
        raise GraphQLError(f"Invalid cursor {cursor!r}") from None


def _edges(
    store: SandboxStore,
    node_type: NodeType,
    sel: Field,
    page: np.ndarray,
    start: int,
    display: bool,
    variables: dict[str, Any],
) -> list[dict[str, Any]]:
    if sel.selections is None:
        raise GraphQLError('Field "edges" must have a selection of subfields.')
    node_sel = None
    for sub in sel.selections:
        if sub.name == "node":
            node_sel = sub
        elif sub.name not in ("cursor", "__typename"):
            raise GraphQLError(f'Cannot query field "{sub.name}" on type "{node_type.name}Edge".')
    nodes = _nodes(store, node_type, node_sel, page, display, variables) if node_sel else []
    edges = []
    for i in range(len(page)):
        edge: dict[str, Any] = {}
        for sub in sel.selections:
            if sub.name == "node":
                edge[sub.key] = nodes[i]
            elif sub.name == "cursor":
                edge[sub.key] = _cursor(start + i)
            else:
                edge[sub.key] = f"{node_type.name}Edge"
        edges.append(edge)
    return edges


def _nodes(
    store: SandboxStore,
    node_type: NodeType,
    sel: Field,
    page: np.ndarray,
    display: bool,
    variables: dict[str, Any],
) -> list[dict[str, Any]]:
    if sel.selections is None:
        raise GraphQLError('Field "node" must have a selection of subfields.')
    builders: list[tuple[str, Callable[[int], Any]]] = [
        (sub.key, _field_builder(store, node_type, sub, page, display, variables))
        for sub in sel.selections
    ]
    return [{key: build(i) for key, build in builders} for i in range(len(page))]


def _field_display(sub: Field, display: bool, variables: dict[str, Any]) -> bool:
    unknown = set(sub.arguments) - {"formatter"}
    if unknown:
        raise GraphQLError(f'Unknown argument "{sorted(unknown)[0]}" on field "{sub.name}".')
    if "formatter" in sub.arguments:
        return resolve(sub.arguments["formatter"], variables) != "none"
    return display


def _field_builder(
    store: SandboxStore,
    node_type: NodeType,
    sub: Field,
    page: np.ndarray,
    display: bool,
    variables: dict[str, Any],
) -> Callable[[int], Any]:
    table = store.table(node_type.table)
    if sub.name == "__typename":
        return lambda i: node_type.name
    show = _field_display(sub, display, variables)
    if sub.name in node_type.scalars:
        if sub.selections is not None:
            raise GraphQLError(f'Field "{sub.name}" is a scalar and has no subfields.')
        column, kind = node_type.scalars[sub.name]
        if column:
            values = table.columns[column].take(page)
        else:
            values = _derived(store, node_type, sub.name, page)
        formatted = [_format(kind, v, show) for v in values]
        return formatted.__getitem__
    if sub.name in node_type.objects:
        if sub.selections is None:
            raise GraphQLError(f'Field "{sub.name}" must have a selection of subfields.')
        if sub.name == "stockByFacility":
            lists = [
                [
                    {"facilityUrl": url, "unitsInStock": q}
                    for url, q in store.stock_by_facility(int(row))
                ]
                for row in page.tolist()
            ]
            kinds = {"facilityUrl": "id", "unitsInStock": "number"}
            return lambda i: [_sub_object(sub, item, kinds, show, variables) for item in lists[i]]
        roles = table.columns["orderRoleList"].take(page)
        suppliers = [
            next(
                (r for r in _objects(rs) if r.get("roleTypeId") == "SUPPLIER"),
                None,
            )
            for rs in roles
        ]
        kinds = {"partyId": "id"}

        def supplier(i: int) -> dict[str, Any] | None:
            role = suppliers[i]
            return None if role is None else _sub_object(sub, role, kinds, show, variables)

        return supplier
    raise GraphQLError(f'Cannot query field "{sub.name}" on type "{node_type.name}".')


def _sub_object(
    sel: Field,
    values: dict[str, Any],
    kinds: dict[str, str],
    display: bool,
    variables: dict[str, Any],
) -> dict[str, Any]:
    out = {}
    assert sel.selections is not None
    for sub in sel.selections:
        if sub.name == "__typename":
            out[sub.key] = sel.name
            continue
        if sub.name not in kinds:
            raise GraphQLError(f'Cannot query field "{sub.name}" on type "{sel.name}".')
        out[sub.key] = _format(
            kinds[sub.name], values.get(sub.name), _field_display(sub, display, variables)
        )
    return out


def _derived(store: SandboxStore, node_type: NodeType, name: str, page: np.ndarray) -> list[Any]:
    if name in ("unitsInStock", "unitsOnOrder"):
        field = "quantityOnHand" if name == "unitsInStock" else "quantityOnOrder"
        return store.stock_totals()[field][page].tolist()
    # Order total: lines (quantity x unit price) plus adjustments; dirty values count as 0.
    table = store.table("order")
    items = table.columns["orderItemList"].take(page)
    adjustments = table.columns["orderAdjustmentList"].take(page)
    totals = []
    for lines, adjs in zip(items, adjustments, strict=True):
        total = sum(
            _num(line.get("quantity")) * _num(line.get("unitPrice")) for line in _objects(lines)
        )
        total += sum(_num(a.get("amount")) for a in _objects(adjs))
        totals.append(round(total, 2))
    return totals


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a nested list (an injected record may hold anything there)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _num(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return 0.0
    try:
        return float(value)
    except OverflowError:  # an injected integer beyond a double
        return 0.0
