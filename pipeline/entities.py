"""The Finale entities the pipeline syncs, described as data.

Each ``EntitySpec`` says where the records come from (collection, key, cursor field, which
rows belong to the entity), how they map to warehouse columns and which checks they must
pass. Adding an entity is a new spec here plus its table in ``schemas/tables.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import sqlalchemy as sa

from events.watch import WatchRule
from pipeline import coerce
from pipeline.loading import LoadStrategy, SumThenMerge, Target, UpsertRows
from pipeline.mapping import (
    NOT_A_NUMBER,
    BadValue,
    Derived,
    ListColumn,
    Nested,
    NestedResult,
    Number,
    Rule,
    Text,
    Timestamp,
    TransformContext,
    each_distinct,
)
from schemas import clean, tables

# --- rules over nested Finale lists ------------------------------------------------------
# The products' lists are read for a whole chunk at once (``Nested`` rules: the 1M-row hot
# path); the other entities' short lists value by value (``Derived``).


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _first_per_row(lists: ListColumn, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, the position of each one's first item in ``mask``), for rows with one."""
    positions = np.flatnonzero(mask)
    rows = lists.rows[positions]  # ascending: a row's items are consecutive
    first = np.flatnonzero(np.diff(rows, prepend=-1))
    return rows[first], positions[first]


def _main_supplier(suppliers: ListColumn, ctx: TransformContext) -> NestedResult:
    """Per row: the partyId of the supplier marked MAIN, else of the first one listed.

    MAIN is marked by a supplierPrefOrderId containing "MAIN" in any case ("10_MAIN",
    "main"). A row is refused when one of its suppliers has a supplierPrefOrderId that is
    neither text nor null (which supplier is MAIN is then unknowable), or when the chosen
    supplier's supplierPartyUrl is not text.
    """
    prefs = suppliers.field("supplierPrefOrderId")
    codes, distinct, odd = coerce.distinct_strings(prefs)
    marks = np.array([*("MAIN" in pref.upper() for pref in distinct), False])  # [-1]: no text
    main = marks[codes]
    chosen = np.full(suppliers.n_rows, -1)  # the item each row takes; -1: none
    rows, first = _first_per_row(suppliers, np.ones(len(prefs), dtype=bool))
    chosen[rows] = first
    rows, first_main = _first_per_row(suppliers, main)
    chosen[rows] = first_main
    urls = np.append(suppliers.field("supplierPartyUrl"), [None])  # [-1]: no supplier
    ids, refused = each_distinct(ctx.party_id, urls[chosen])
    for row, position in zip(*_first_per_row(suppliers, odd), strict=True):
        what = coerce.json_type(prefs[position])
        refused[int(row)] = f"has a supplierPrefOrderId that is not text (a {what})"
    return ids, refused


def _reorder(field_name: str) -> Callable[[ListColumn, TransformContext], NestedResult]:
    """Per row: ``field_name`` of the account-wide guideline (no facilityUrl) if there is
    one, else the sum over the facility guidelines; None when no guideline gives one.

    Values may be display strings ("1,200"); a row with a value that is not a number is
    refused by the number parser's rule, naming the whole list.
    """

    def pick(guidelines: ListColumn, ctx: TransformContext) -> NestedResult:
        rows = guidelines.rows
        overall = ~np.fromiter(map(bool, guidelines.field("facilityUrl")), bool, len(rows))
        counted = overall | ~guidelines.per_row(overall)[rows]
        numbers, bad = coerce.to_number(pd.Series(guidelines.field(field_name), dtype=object))
        values = numbers.to_numpy()
        given = counted & ~np.isnan(values)
        sums = np.bincount(rows[given], weights=values[given], minlength=guidelines.n_rows)
        out = np.where(guidelines.per_row(given), sums, np.nan)
        junk = guidelines.per_row(counted & bad.to_numpy())
        return out, dict.fromkeys(np.flatnonzero(junk).tolist(), NOT_A_NUMBER)

    return pick


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
    #: ``finalise(parent_frame, raw, child_frame)`` fills the parent's columns computed
    #: from its children (an order's total from its lines), before the parent is judged.
    finalise: Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], pd.DataFrame] | None = None


@dataclass(frozen=True)
class Catalogue:
    """A URL -> id lookup the transform resolves against, read from the warehouse.

    Attributes:
        entity: the entity whose table fills it (named when it is missing).
        context_field: the ``TransformContext`` field it fills.
        url: the column holding Finale's URL.
        key: the column holding the id the URL resolves to.
    """

    entity: str
    context_field: str
    url: sa.Column[Any]
    key: sa.Column[Any]


#: The catalogues an ``EntitySpec.lookups`` may name. Deleted rows count too: a URL the
#: warehouse once resolved still names that record (stock may outlive its product).
_FACILITY = tables.facilities.c
CATALOGUES: dict[str, Catalogue] = {
    catalogue.entity: catalogue
    for catalogue in (
        Catalogue(
            "facilities",
            "facility_ids",
            tables.facilities.c.facility_url,
            tables.facilities.c.facility_id,
        ),
        Catalogue("vendors", "party_ids", tables.vendors.c.finale_url, tables.vendors.c.party_id),
        Catalogue("products", "product_skus", tables.products.c.finale_url, tables.products.c.sku),
    )
}


@dataclass(frozen=True)
class Reference:
    """A column whose values must name rows of another entity (a foreign key in all but name).

    The data-quality checks (``pipeline.dq``) count the rows whose non-null value names no
    row of ``entity``'s table (deleted rows count as present, as for the catalogues).

    Attributes:
        column: the referring column.
        entity: the entity referred to; its single key column is matched unless ``target``.
        table: the table holding ``column``; None = the referring entity's own table (an
            order's lines are in its child table).
        target: the column of ``entity``'s table to match; None = its key column.
    """

    column: str
    entity: str
    table: sa.Table | None = None
    target: str | None = None

    def name(self, own: sa.Table) -> str:
        """``<table>.<column> -> <entity>``, the subject of the check's results."""
        table = self.table if self.table is not None else own
        return f"{table.name}.{self.column} -> {self.entity}"


@dataclass(frozen=True)
class EntitySpec:
    """One Finale entity and how it lands in the warehouse.

    Attributes:
        name: the entity name used by the CLI, sync_runs, sync_state and quarantine.
        collection: what it is read from: a Finale REST collection, or an app table.
        key_field: the source's id field; becomes ``quarantine.source_key``.
        table: the warehouse table; its primary key is the mapped key.
        mapping: warehouse column -> rule (see ``pipeline.mapping``).
        schema: the pandera schema mapped rows must pass.
        cursor_field: the field incremental reads filter on; None = always read in full.
        server_filter: equality filters sent to Finale (and re-applied locally by ``select``,
            because a production client found Finale's orderTypeId filter unreliable).
        select: which raw rows of the collection belong to this entity.
        depends_on: entities that must be synced first (their ids resolve URLs here).
        child: an optional child table exploded from a nested list.
        loading: how rows reach the table (``pipeline.loading``): upserted chunk by chunk,
            or summed per key over the whole read and merged at its end.
        expected_interval: how often the entity is scheduled to sync (the fastest
            schedule in prefect.yaml that includes it); sync health measures freshness
            against it.
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
        lookups: warehouse catalogues the transform resolves URLs against
            (``CATALOGUES``: "facilities", "vendors", "products").
        required_lookups: those of ``lookups`` that must not be empty: a run fails at once
            (``MissingCatalogue``) rather than quarantine every record.
        quarantine_key: per raw row, the ``quarantine.source_key`` text; None = the
            ``key_field`` value.
        source: the ``pipeline.source.RecordSource`` it is read from: "finale" (Finale's
            API) or "supabase" (the app's tables); the flows open one per name.
        source_columns: for a typed source (an app table), the columns to read and their
            kinds (``connectors.supabase.Kind`` values); Finale sends what it sends.
        references: columns that must name rows of other entities (``Reference``), for
            the referential-integrity checks.
        unique_columns: columns besides the primary key whose values must be unique among
            live rows (Finale URLs: the catalogues resolve a URL to one id).
        events: watch rules (``events.watch``) whose events the entity's loads record in
            the outbox, in the transaction that writes its rows.
    """

    name: str
    collection: str
    key_field: str
    table: sa.Table
    mapping: Mapping[str, Rule]
    schema: pa.DataFrameSchema
    source: str = "finale"
    source_columns: Mapping[str, str] = field(default_factory=dict)
    cursor_field: str | None = "lastUpdatedDate"
    server_filter: Mapping[str, str] = field(default_factory=dict)
    select: Callable[[pd.DataFrame], pd.Series] | None = None
    depends_on: tuple[str, ...] = ()
    child: ChildSpec | None = None
    loading: LoadStrategy = field(default_factory=UpsertRows)
    expected_interval: timedelta = timedelta(hours=1)
    deferred_fields: tuple[str, ...] = ()
    lists: Mapping[str, type] = field(default_factory=dict)
    identity_fields: tuple[str, ...] | None = None
    row_checks: tuple[Callable[[pd.DataFrame], pd.Series], ...] = ()
    lookups: frozenset[str] = frozenset({"facilities", "vendors"})
    required_lookups: frozenset[str] = frozenset()
    quarantine_key: Callable[[pd.DataFrame], pd.Series] | None = None
    references: tuple[Reference, ...] = ()
    unique_columns: tuple[str, ...] = ()
    events: tuple[WatchRule, ...] = ()

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

    @property
    def tables(self) -> list[sa.Table]:
        """The tables a run writes: the entity's own, then its child's."""
        return [self.table] + ([self.child.table] if self.child is not None else [])

    @property
    def target(self) -> Target:
        """What its loader writes (``pipeline.loading``)."""
        return Target(self.table, self.child.table if self.child is not None else None)

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
    references=(Reference("parent_facility_id", "facilities"),),
    unique_columns=("facility_url",),
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
    unique_columns=("finale_url",),
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
        "primary_vendor_party_id": Nested("supplierList", _main_supplier),
        "reorder_point": Nested("reorderGuidelineList", _reorder("reorderPoint"), "number"),
        "reorder_quantity": Nested("reorderGuidelineList", _reorder("reorderQuantity"), "number"),
        "created_at": Timestamp("createdDate"),
        "last_updated_at": Timestamp("lastUpdatedDate"),
    },
    schema=clean.products,
    # Also read before each stock run (stock-every-15-minutes), to resolve its URLs.
    expected_interval=timedelta(minutes=15),
    depends_on=("vendors",),
    deferred_fields=("priceList", "userFieldDataList"),
    lists={"supplierList": dict, "reorderGuidelineList": dict},
    references=(Reference("primary_vendor_party_id", "vendors"),),
    unique_columns=("finale_url",),
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


def _stock_below_reorder_point() -> WatchRule:
    """Active SKUs whose available stock, over all facilities, is below the reorder point.

    A product with a reorder point and no stock entry has none available. Announced when
    a SKU falls below; it is announced again only after it has been restocked.
    """
    products, stock = tables.products, tables.stock_levels
    available = sa.func.coalesce(sa.func.sum(stock.c.quantity_available), 0)
    live_stock = sa.and_(stock.c.sku == products.c.sku, stock.c.deleted_at.is_(None))
    return WatchRule(
        name="stock.below_reorder_point",
        select=sa.select(
            products.c.sku.label("sku"),
            sa.literal("below").label("state"),
            available.label("quantity_available"),
            products.c.reorder_point,
            products.c.reorder_quantity,
        )
        .select_from(products.outerjoin(stock, live_stock))
        .where(
            products.c.deleted_at.is_(None),
            products.c.status == "PRODUCT_ACTIVE",
            products.c.reorder_point > 0,
        )
        .group_by(products.c.sku, products.c.reorder_point, products.c.reorder_quantity)
        .having(available < products.c.reorder_point),
        key=products.c.sku,
        key_column="sku",
        on_new="stock.below_reorder_point",
    )


def _purchase_order_status() -> WatchRule:
    """Every live purchase order and its status: created, then each status change."""
    orders = tables.purchase_orders
    return WatchRule(
        name="purchase_order.status",
        select=sa.select(
            orders.c.order_id,
            orders.c.status,
            orders.c.vendor_party_id,
            orders.c.destination_facility_id,
            orders.c.order_date,
            orders.c.due_date,
            orders.c.total_amount,
            orders.c.line_count,
            orders.c.finale_url,
        ).where(orders.c.deleted_at.is_(None)),
        key=orders.c.order_id,
        key_column="order_id",
        on_new="purchase_order.created",
        on_change="purchase_order.status_changed",
    )


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
    lookups=frozenset({"facilities", "products"}),
    required_lookups=frozenset({"products"}),
    quarantine_key=_stock_entry_key,
    # An entry is one part of a product's quantity at a sub-location: summed over the
    # whole read, then merged.
    loading=SumThenMerge(
        parts=(
            "sku",
            "facility_id",
            "quantity_on_hand",
            "quantity_on_order",
            "quantity_reserved",
        )
    ),
    expected_interval=timedelta(minutes=15),
    depends_on=("facilities", "products"),
    references=(Reference("sku", "products"), Reference("facility_id", "facilities")),
    events=(_stock_below_reorder_point(),),
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
        finalise=order_totals,
    ),
    references=(
        Reference("sku", "products", table=tables.purchase_order_lines),
        Reference("vendor_party_id", "vendors"),
        Reference("destination_facility_id", "facilities"),
    ),
    unique_columns=("finale_url",),
    events=(_purchase_order_status(),),
)

#: The app's purchase-order requests (``writeback/tables.py``), read from Supabase by
#: ``updated_at``, which the app's trigger moves when a request or one of its lines changes
#: (not when write-back records its outcome: those columns are not read).
PURCHASE_ORDER_REQUESTS = EntitySpec(
    name="purchase_order_requests",
    source="supabase",
    collection="purchase_order_requests",
    key_field="id",
    cursor_field="updated_at",
    source_columns={
        "id": "integer",
        "updated_at": "timestamp",
        "vendor_party_id": "text",
        "destination_facility_id": "text",
        "status": "text",
        "created_at": "timestamp",
    },
    table=tables.app_purchase_order_requests,
    mapping={
        "request_id": Text("id"),
        "vendor_party_id": Text("vendor_party_id"),
        "destination_facility_id": Text("destination_facility_id"),
        "status": Text("status"),
        "created_at": Timestamp("created_at"),
        "last_updated_at": Timestamp("updated_at"),
    },
    schema=clean.app_purchase_order_requests,
    # supabase-sync runs every 10 minutes, after purchase-orders-to-finale.
    expected_interval=timedelta(minutes=10),
    lookups=frozenset(),
    # A request names warehouse records; the daily report checks that they exist.
    references=(
        Reference("vendor_party_id", "vendors"),
        Reference("destination_facility_id", "facilities"),
    ),
)

#: Every Finale entity, in dependency order (what ``finale-sync`` runs).
ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec for spec in (FACILITIES, VENDORS, PRODUCTS, STOCK, PURCHASE_ORDERS)
}

#: Every app entity (what ``supabase-sync`` runs).
APP_ENTITIES: dict[str, EntitySpec] = {spec.name: spec for spec in (PURCHASE_ORDER_REQUESTS,)}


def entity_spec(name: str) -> EntitySpec:
    """The spec of the Finale or app entity ``name``.

    Raises:
        ValueError: naming the unknown entity and listing the valid ones.
    """
    spec = ENTITIES.get(name) or APP_ENTITIES.get(name)
    if spec is None:
        known = ", ".join([*ENTITIES, *APP_ENTITIES])
        raise ValueError(f"unknown entity {name!r}; choose from {known}")
    return spec


def resolve_entities(
    names: list[str] | str | None, among: Mapping[str, EntitySpec] = ENTITIES
) -> list[EntitySpec]:
    """Turn "products,vendors" (or a list, or None = all) into specs in dependency order.

    Args:
        names: the entity names, comma-separated or a list; None or "all" for all.
        among: the entities to choose from (default: Finale's; ``APP_ENTITIES``).

    Raises:
        ValueError: naming the unknown entity and listing the valid ones.
    """
    if names is None or names == "all" or names == ["all"]:
        return list(among.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted = {n.strip() for n in names}
    unknown = sorted(wanted - among.keys())
    if unknown:
        raise ValueError(f"unknown entity {', '.join(unknown)}; choose from {', '.join(among)}")
    return [spec for name, spec in among.items() if name in wanted]
