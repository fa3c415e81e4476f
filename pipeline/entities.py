"""The Finale entities the pipeline syncs, described as data.

Each ``EntitySpec`` says where the records come from (collection, key, cursor field, which
rows belong to the entity), how they map to warehouse columns and which checks they must
pass. Adding an entity is a new spec here plus its table in ``schemas/tables.py``.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import sqlalchemy as sa

from pipeline import coerce
from pipeline.mapping import (
    BadValue,
    Derived,
    ListColumn,
    Number,
    Rule,
    Text,
    Timestamp,
    TransformContext,
    text_each_once,
)
from schemas import clean, tables

# --- per-value helpers for nested Finale lists ------------------------------------------
# (and, for the products' hot path, their columnar versions: see ``Derived.columnar``)


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_main(pref: Any) -> bool:
    """Whether a supplierPrefOrderId marks the MAIN supplier ("10_MAIN", "main", ...).

    Raises:
        BadValue: the preference is neither text nor null (which supplier is MAIN is
            then unknowable).
    """
    if pref is None:
        return False
    if not isinstance(pref, str):
        raise BadValue(f"has a supplierPrefOrderId that is not text (a {coerce.json_type(pref)})")
    return "MAIN" in pref.upper()


def _main_supplier(value: Any, ctx: TransformContext) -> str | None:
    """The supplier marked MAIN in supplierPrefOrderId, else the first one listed."""
    # One pass, no intermediate lists.
    if not isinstance(value, list):
        return None
    first = None
    for supplier in value:
        if isinstance(supplier, dict):
            if first is None:
                first = supplier
            if _is_main(supplier.get("supplierPrefOrderId")):
                return ctx.party_id(supplier.get("supplierPartyUrl"))
    return ctx.party_id(first.get("supplierPartyUrl")) if first else None


def _main_suppliers(suppliers: ListColumn, ctx: TransformContext) -> tuple[Any, np.ndarray]:
    """``_main_supplier`` of every row at once (a ``Derived.columnar``).

    The same walk as ``_main_supplier``, inlined over the rows: the MAIN test runs once per
    distinct preference string and each distinct URL is resolved once, which is what made
    the per-row calls slow. A search stops at the MAIN supplier, so unlike a vectorised
    version it reads few entries. Rows holding list or dict subclasses (never from JSON)
    are left to ``_main_supplier``.
    """
    is_main: dict[str, bool] = {}
    known = is_main.get
    text = str
    urls: list[Any] = []
    append = urls.append  # bound once: this loop runs per row of every chunk
    odd: list[int] = []  # rows for _main_supplier, by position (len(urls) is the row)
    for value in suppliers.values:
        url = None
        if type(value) is list:
            first = None
            for supplier in value:
                if type(supplier) is not dict:
                    if isinstance(supplier, dict):
                        odd.append(len(urls))
                    continue
                pref = supplier.get("supplierPrefOrderId")
                if type(pref) is text:
                    main = known(pref)
                    if main is None:
                        main = is_main[pref] = _is_main(pref)
                elif pref is None:
                    main = False
                else:  # _main_supplier says what is wrong with it
                    odd.append(len(urls))
                    break
                if main:
                    url = supplier.get("supplierPartyUrl")
                    break
                if first is None:
                    first = supplier
            else:
                if first:
                    url = first.get("supplierPartyUrl")
        elif isinstance(value, list):
            odd.append(len(urls))
        if url is not None and type(url) is not text:
            odd.append(len(urls))  # not a URL: _main_supplier reports it
            url = None
        append(url)
    todo = np.zeros(suppliers.n_rows, dtype=bool)
    todo[odd] = True
    return text_each_once(ctx.party_id, urls), todo


def _reorder(field_name: str) -> Callable[[Any, TransformContext], Any]:
    """Account-wide guideline if there is one, else the sum over facilities."""

    def pick(value: Any, ctx: TransformContext) -> Any:
        if not isinstance(value, list) or not value:
            return None
        guidelines = [g for g in value if isinstance(g, dict)]
        overall = [g for g in guidelines if not g.get("facilityUrl")]
        numbers = [n for g in overall or guidelines if (n := g.get(field_name)) is not None]
        if not numbers:
            return None
        if len(numbers) == 1:
            return numbers[0]
        try:
            return sum(float(str(n).replace(",", "")) for n in numbers)
        except ValueError:
            return numbers[0]  # leave the junk for the number parser to report

    return pick


#: Integers whose magnitudes add up to less than this add up exactly in floating point.
_EXACT_SUM_LIMIT = 2.0**53


def _reorders(field_name: str) -> Callable[[ListColumn, TransformContext], Any]:
    """``_reorder(field_name)`` of every row at once (a ``Derived.columnar``).

    Handles plain numbers; rows whose chosen values include anything else (display strings,
    junk, booleans, huge ints) or several non-integers (whose float sum depends on the
    summation order, which differs between Python versions) are left to ``_reorder``.
    """

    def pick(guidelines: ListColumn, ctx: TransformContext) -> tuple[np.ndarray, np.ndarray]:
        n_rows = guidelines.n_rows
        # Shared with the other reorder column: which guidelines count for their row.
        chosen = guidelines.memo("reorder_chosen", lambda: _reorder_chosen(guidelines))
        numbers, present, other = _numbers(guidelines.field(field_name))
        todo = guidelines.any(chosen & other)
        counted = chosen & present & ~other  # _reorder's "numbers", when none is other
        rows = guidelines.rows[counted]
        numbers = numbers[counted]
        count = np.bincount(rows, minlength=n_rows)
        out = np.full(n_rows, np.nan)  # no number: None
        single = (count == 1)[rows]
        out[rows[single]] = numbers[single]  # one number: that number
        several = (count >= 2)[rows]
        if several.any():  # several numbers: their sum
            rows, numbers = rows[several], numbers[several]
            # Integers below 2**53 add up exactly in any order, as Python's sum() would;
            # other sums (0.1 + 0.2) are left to _reorder, i.e. to sum() itself.
            integral = np.isfinite(numbers) & (numbers == np.trunc(numbers))
            todo[rows[~integral]] = True
            whole = np.where(integral, numbers, 0.0)
            todo |= np.bincount(rows, weights=np.abs(whole), minlength=n_rows) >= _EXACT_SUM_LIMIT
            sums = np.bincount(rows, weights=whole, minlength=n_rows)
            out[rows] = sums[rows]
        return out, todo

    return pick


def _reorder_chosen(guidelines: ListColumn) -> np.ndarray:
    """Per guideline: whether it counts, i.e. it is account-wide or its row has none such."""
    overall = guidelines.mask(map(operator.not_, guidelines.field("facilityUrl")))
    return overall | ~guidelines.any(overall)[guidelines.rows]


_PLAIN_NUMBERS = {int, float}
_PLAIN_OR_NONE = {int, float, type(None)}


def _numbers(values: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read guideline values: (floats, NaN where not a plain number; is not None; other).

    "other" marks values that are neither None nor a plain int or float (strings, bools,
    ints too large for a float): ``_reorder`` keeps those as they are.
    """
    types = set(map(type, values))
    if types <= _PLAIN_OR_NONE:  # the usual case: one conversion, no per-value test
        try:
            numbers = np.array(values, dtype=np.float64)  # None -> NaN
        except OverflowError:
            pass
        else:
            missing = np.isnan(numbers)
            # Every None is a NaN now; NaNs that were sent as numbers count as present.
            if float not in types or missing.sum() == values.count(None):
                return numbers, ~missing, np.zeros(len(values), dtype=bool)
    present = np.array([v is not None for v in values], dtype=bool)
    other = np.array([type(v) not in _PLAIN_NUMBERS for v in values], dtype=bool) & present
    floats = []
    for i, (value, is_other) in enumerate(zip(values, other.tolist(), strict=True)):
        try:
            floats.append(np.nan if is_other or value is None else float(value))
        except OverflowError:
            other[i] = True
            floats.append(np.nan)
    return np.array(floats, dtype=np.float64), present, other


def _contact(kind: str) -> Callable[[Any, TransformContext], Any]:
    def pick(value: Any, ctx: TransformContext) -> Any:
        for mech in _items(value):
            if mech.get("contactMechTypeId") == kind and mech.get("infoString"):
                return mech["infoString"]
        return None

    return pick


def _role_party(role: str) -> Callable[[Any, TransformContext], Any]:
    def pick(value: Any, ctx: TransformContext) -> Any:
        for entry in _items(value):
            if entry.get("roleTypeId") == role:
                return entry.get("partyId")
        return None

    return pick


def _facility(value: Any, ctx: TransformContext) -> str | None:
    return ctx.facility_id(value)


def _has_role(role: str) -> Callable[[pd.DataFrame], pd.Series]:
    """Rows whose role list names ``role``, and rows whose role list is malformed.

    A malformed list (not a list) may hide a supplier: it is selected, so the entity's
    list check quarantines it instead of the record silently not counting.
    """

    def select(raw: pd.DataFrame) -> pd.Series:
        roles = raw.get("roleTypeIdList", pd.Series(None, index=raw.index, dtype=object))
        return roles.map(lambda v: role in v if isinstance(v, list) else v is not None).astype(bool)

    return select


def _field_equals(name: str, value: str) -> Callable[[pd.DataFrame], pd.Series]:
    """Rows whose ``name`` is ``value``, and rows where it is not text at all.

    Those may be ours too: they are selected and then quarantined by the mapping's rule
    for ``name``, rather than silently left out.
    """

    def select(raw: pd.DataFrame) -> pd.Series:
        if name not in raw.columns:
            return pd.Series(True, index=raw.index)
        column = raw[name]
        return column.map(lambda v: v == value or not isinstance(v, str)).astype(bool)

    return select


# --- the spec ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildSpec:
    """Rows of a child table exploded from a nested list of the parent record.

    ``explode(raw, ctx)`` returns a raw-ish frame with a ``parent`` column holding the parent
    row's index; ``mapping`` and ``schema`` then apply as for the parent. A bad child row
    quarantines its parent, so an order is loaded whole or not at all.
    """

    table: sa.Table
    explode: Callable[[pd.DataFrame, TransformContext], pd.DataFrame]
    mapping: Mapping[str, Rule]
    schema: pa.DataFrameSchema


@dataclass(frozen=True)
class EntitySpec:
    """One Finale entity and how it lands in the warehouse.

    Attributes:
        name: the entity name used by the CLI, sync_runs, sync_state and quarantine.
        collection: the Finale REST collection it is read from.
        key_field: the Finale id field; becomes ``quarantine.source_key``.
        table: the warehouse table; its primary key is the mapped key.
        mapping: warehouse column -> rule (see ``pipeline.mapping``).
        schema: the pandera schema mapped rows must pass.
        cursor_field: the field incremental reads filter on; None = always read in full.
        server_filter: equality filters sent to Finale (and re-applied locally by ``select``,
            because a production client found Finale's orderTypeId filter unreliable).
        select: which raw rows of the collection belong to this entity.
        depends_on: entities that must be synced first (their ids resolve URLs here).
        child: an optional child table exploded from a nested list.
        output_columns: the columns a chunk hands to the loader, when they are not the
            table's business columns (stock hands per-item quantities to be summed).
        deferred_fields: nested fields the transform never reads: they stay undecoded JSON
            until a record is quarantined (its payload shows them as Finale sent them),
            which saves most of their parsing cost.
        lists: nested list fields the mapping reads -> their item type (``dict`` or
            ``str``); a record whose list is malformed is quarantined.
        identity_fields: raw fields whose combination identifies a record within one read,
            when that is not the mapped primary key (stock entries); two records with one
            identity in a read are quarantined, never merged.
        row_checks: functions of the mapped frame returning, per row, a reason or None:
            rules that span several columns (a stock entry's productId against the SKU
            its URL resolves to).
        summed: rows are partial quantities, summed per key over the whole read and merged
            at the end (``warehouse.stock``), instead of upserted chunk by chunk.
        lookups: warehouse catalogues the transform resolves URLs against
            (``TransformContext``): any of "facilities", "vendors", "products".
        quarantine_key: per raw row, the ``quarantine.source_key`` text; None = the
            ``key_field`` value.
    """

    name: str
    collection: str
    key_field: str
    table: sa.Table
    mapping: Mapping[str, Rule]
    schema: pa.DataFrameSchema
    cursor_field: str | None = "lastUpdatedDate"
    server_filter: Mapping[str, str] = field(default_factory=dict)
    select: Callable[[pd.DataFrame], pd.Series] | None = None
    depends_on: tuple[str, ...] = ()
    child: ChildSpec | None = None
    output_columns: tuple[str, ...] | None = None
    deferred_fields: tuple[str, ...] = ()
    lists: Mapping[str, type] = field(default_factory=dict)
    identity_fields: tuple[str, ...] | None = None
    row_checks: tuple[Callable[[pd.DataFrame], pd.Series], ...] = ()
    summed: bool = False
    lookups: frozenset[str] = frozenset({"facilities", "vendors"})
    quarantine_key: Callable[[pd.DataFrame], pd.Series] | None = None

    def __post_init__(self) -> None:
        read = {self.key_field, self.cursor_field, *(r.source for r in self.mapping.values())}
        clash = sorted(f for f in self.deferred_fields if f in read)
        if clash:
            raise ValueError(
                f"{self.name}: deferred_fields {clash} are read by the key, cursor or "
                "mapping; defer only fields nothing reads"
            )

    @property
    def incremental(self) -> bool:
        """Whether the entity can be read incrementally by its cursor field."""
        return self.cursor_field is not None

    @property
    def key_columns(self) -> list[str]:
        """The warehouse primary-key columns."""
        return [c.name for c in self.table.primary_key.columns]

    def source_key(self, raw: pd.DataFrame) -> pd.Series:
        """The ``quarantine.source_key`` of each raw row."""
        if self.quarantine_key is not None:
            keys = self.quarantine_key(raw)
        else:
            keys = raw.get(self.key_field, pd.Series(None, index=raw.index, dtype=object))
        return pd.Series([_key_text(k) for k in keys.tolist()], index=raw.index, dtype=object)


def _key_text(key: Any) -> str | None:
    """A source key as text any database stores: NULs and lone surrogates escaped."""
    if key is None or key != key:
        return None
    text = key if isinstance(key, str) else str(key)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _order_lines(raw: pd.DataFrame, ctx: TransformContext) -> pd.DataFrame:
    rows = []
    items = raw.get("orderItemList", pd.Series(None, index=raw.index, dtype=object))
    ids = raw.get("orderId", pd.Series(None, index=raw.index, dtype=object))
    for parent, order_id, lines in zip(raw.index, ids, items, strict=True):
        for line_no, item in enumerate(_items(lines), start=1):
            # The line's own keys first: an item may not override which order it is in.
            rows.append({**item, "parent": parent, "orderId": order_id, "lineNo": line_no})
    columns = ["parent", "orderId", "lineNo", "productId", "productUrl", "quantity", "unitPrice"]
    if not rows:
        return pd.DataFrame(columns=columns)
    # Object columns: values stay as sent (a lone surrogate would break pandas' string
    # inference) until the child mapping parses and judges them.
    return pd.DataFrame({c: pd.Series([row.get(c) for row in rows], dtype=object) for c in columns})


def _adjustments_total(value: Any, ctx: TransformContext) -> float:
    """The sum of an order's adjustment amounts (display strings accepted).

    Raises:
        BadValue: an amount is present but not a finite number.
    """
    total = 0.0
    for position, adjustment in enumerate(_items(value), start=1):
        amount = adjustment.get("amount")
        number, bad = coerce.to_number(pd.Series([amount], dtype=object))
        if bad.iloc[0]:
            raise BadValue(f"has an amount that is not a finite number (entry {position})")
        if not np.isnan(number.iloc[0]):
            total += float(number.iloc[0])
    return total


def order_totals(orders: pd.DataFrame, raw: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """Fill the order columns computed from its lines and adjustments.

    ``total_amount`` = sum(quantity x unit_price) + sum(adjustments) (the mapped
    ``adjustments_total``); ``lines_checksum`` is a hash of the lines so that a change to a
    line alone marks the order as updated.
    """
    out = orders.copy()
    if len(lines):
        value = (
            (lines["quantity"].fillna(0) * lines["unit_price"].fillna(0))
            .groupby(lines["parent"])
            .sum()
        )
        count = lines.groupby("parent").size()
        cells = lines.drop(columns=["parent"]).astype(str).fillna("")
        rendered = cells.iloc[:, 0].str.cat([cells[c] for c in cells.columns[1:]], sep="|")
        checksum = rendered.groupby(lines["parent"]).agg(
            lambda s: hashlib.md5("\n".join(s).encode()).hexdigest()
        )
    else:
        value = count = checksum = pd.Series(dtype=object)
    # An empty chunk (a quiet incremental window) maps to an object Series; keep it float
    # so total_amount still passes the schema's dtype check.
    adjustments = orders["adjustments_total"].astype("float64")
    out["total_amount"] = value.reindex(out.index).fillna(0).astype(float) + adjustments.reindex(
        out.index
    ).fillna(0)
    out["line_count"] = count.reindex(out.index).fillna(0).astype("int64")
    out["lines_checksum"] = checksum.reindex(out.index).astype(object)
    return out


FACILITIES = EntitySpec(
    name="facilities",
    collection="facility",
    key_field="facilityId",
    table=tables.facilities,
    mapping={
        "facility_id": Text("facilityId"),
        "facility_url": Text("facilityUrl"),
        "name": Text("facilityName"),
        "parent_facility_id": Derived("parentFacilityUrl", _facility),
        "status": Text("statusId"),
        "last_updated_at": Timestamp("lastUpdatedDate"),
    },
    schema=clean.facilities,
)

VENDORS = EntitySpec(
    name="vendors",
    collection="partygroup",
    key_field="partyId",
    table=tables.vendors,
    mapping={
        "party_id": Text("partyId"),
        "name": Text("groupName"),
        "status": Text("statusId"),
        "email": Derived("contactMechList", _contact("EMAIL_ADDRESS")),
        "phone": Derived("contactMechList", _contact("TELECOM_NUMBER")),
        "finale_url": Text("partyUrl"),
        "last_updated_at": Timestamp("lastUpdatedDate"),
    },
    schema=clean.vendors,
    select=_has_role("SUPPLIER"),
    lists={"roleTypeIdList": str, "contactMechList": dict},
)

PRODUCTS = EntitySpec(
    name="products",
    collection="product",
    key_field="productId",
    table=tables.products,
    mapping={
        "sku": Text("productId"),
        "finale_url": Text("productUrl"),
        "name": Text("internalName"),
        "status": Text("statusId"),
        "category": Text("userCategory"),
        "cost": Number("cost"),
        "primary_vendor_party_id": Derived(
            "supplierList", _main_supplier, columnar=_main_suppliers
        ),
        "reorder_point": Derived(
            "reorderGuidelineList",
            _reorder("reorderPoint"),
            "number",
            columnar=_reorders("reorderPoint"),
        ),
        "reorder_quantity": Derived(
            "reorderGuidelineList",
            _reorder("reorderQuantity"),
            "number",
            columnar=_reorders("reorderQuantity"),
        ),
        "created_at": Timestamp("createdDate"),
        "last_updated_at": Timestamp("lastUpdatedDate"),
    },
    schema=clean.products,
    depends_on=("vendors",),
    deferred_fields=("priceList", "userFieldDataList"),
    lists={"supplierList": dict, "reorderGuidelineList": dict},
)


def _product_sku(value: Any, ctx: TransformContext) -> str:
    return ctx.product_sku(value)


#: What identifies a stock entry, as Finale documents ``inventoryitem``.
STOCK_ENTRY_FIELDS = ("productUrl", "facilityUrl", "lotId", "normalizedPackingString", "orderUrl")


def _product_id_agrees(frame: pd.DataFrame) -> pd.Series:
    """A stock entry's own productId, when it has one, must be the SKU its URL names."""
    claimed, sku = frame["entry_product_id"], frame["sku"]
    differs = claimed.notna() & sku.notna() & (claimed != sku).fillna(False).astype(bool)
    return pd.Series(
        [
            f"productId on the entry disagrees with the product catalogue (got {c!r}, "
            f"the catalogue says {s!r} for its productUrl)"
            if d
            else None
            for c, s, d in zip(claimed.tolist(), sku.tolist(), differs.tolist(), strict=True)
        ],
        index=frame.index,
        dtype=object,
    )


def _stock_entry_key(raw: pd.DataFrame) -> pd.Series:
    """``productUrl@facilityUrl``, then the entry's lot, packing and order when it has them.

    Built from the entry's documented identity as Finale sent it, so the same entry has the
    same key in every run, whether or not its URLs resolved this time.
    """
    named = [("lot", "lotId"), ("packing", "normalizedPackingString"), ("order", "orderUrl")]
    columns = [_raw(raw, "productUrl"), _raw(raw, "facilityUrl")]
    columns += [_raw(raw, name) for _, name in named]
    keys = []
    for product, facility, *more in zip(*columns, strict=True):
        key = (
            f"{product if product is not None else '?'}@{facility if facility is not None else '?'}"
        )
        key += "".join(
            f" {label}={v}" for (label, _), v in zip(named, more, strict=True) if v is not None
        )
        keys.append(key)
    return pd.Series(keys, index=raw.index, dtype=object)


def _raw(raw: pd.DataFrame, name: str) -> list[Any]:
    """A raw field's values (None where absent)."""
    if name not in raw.columns:
        return [None] * len(raw)
    return [None if v is None or v != v else v for v in raw[name].tolist()]


STOCK = EntitySpec(
    name="stock",
    collection="inventoryitem",
    key_field="productUrl",
    table=tables.stock_levels,
    mapping={
        # Finale documents productUrl on every entry, and no productId: the SKU comes from
        # the product catalogue, never from the URL's text.
        "sku": Derived("productUrl", _product_sku),
        "entry_product_id": Text("productId"),
        "facility_id": Derived("facilityUrl", _facility),
        "quantity_on_hand": Number("quantityOnHand"),
        "quantity_on_order": Number("quantityOnOrder"),
        "quantity_reserved": Number("quantityReserved"),
    },
    schema=clean.stock_items,
    cursor_field=None,
    identity_fields=STOCK_ENTRY_FIELDS,
    row_checks=(_product_id_agrees,),
    summed=True,
    lookups=frozenset({"facilities", "products"}),
    quarantine_key=_stock_entry_key,
    output_columns=(
        "sku",
        "facility_id",
        "quantity_on_hand",
        "quantity_on_order",
        "quantity_reserved",
    ),
    depends_on=("facilities", "products"),
)

PURCHASE_ORDERS = EntitySpec(
    name="purchase_orders",
    collection="order",
    key_field="orderId",
    table=tables.purchase_orders,
    mapping={
        "order_id": Text("orderId"),
        "finale_url": Text("orderUrl"),
        "status": Text("statusId"),
        "vendor_party_id": Derived("orderRoleList", _role_party("SUPPLIER")),
        "order_date": Timestamp("orderDate"),
        "due_date": Timestamp("dueDate"),
        "receive_date": Timestamp("receiveDate"),
        "destination_facility_id": Derived("destinationFacilityUrl", _facility),
        "last_updated_at": Timestamp("lastUpdatedDate"),
        "order_type": Text("orderTypeId"),
        "adjustments_total": Derived("orderAdjustmentList", _adjustments_total, "number"),
    },
    schema=clean.purchase_orders,
    lists={"orderRoleList": dict, "orderItemList": dict, "orderAdjustmentList": dict},
    server_filter={"orderTypeId": "PURCHASE_ORDER"},
    select=_field_equals("orderTypeId", "PURCHASE_ORDER"),
    depends_on=("facilities", "vendors", "products"),
    child=ChildSpec(
        table=tables.purchase_order_lines,
        explode=_order_lines,
        mapping={
            "order_id": Text("orderId"),
            "line_no": Number("lineNo", integer=True),
            "sku": Text("productId"),
            "product_url": Text("productUrl"),
            "quantity": Number("quantity"),
            "unit_price": Number("unitPrice"),
        },
        schema=clean.purchase_order_lines,
    ),
)

#: Every entity, in dependency order.
ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec for spec in (FACILITIES, VENDORS, PRODUCTS, STOCK, PURCHASE_ORDERS)
}


def resolve_entities(names: list[str] | str | None) -> list[EntitySpec]:
    """Turn "products,vendors" (or a list, or None = all) into specs in dependency order.

    Raises:
        ValueError: naming the unknown entity and listing the valid ones.
    """
    if names is None or names == "all" or names == ["all"]:
        return list(ENTITIES.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted = {n.strip() for n in names}
    unknown = sorted(wanted - ENTITIES.keys())
    if unknown:
        raise ValueError(f"unknown entity {', '.join(unknown)}; choose from {', '.join(ENTITIES)}")
    return [spec for name, spec in ENTITIES.items() if name in wanted]
