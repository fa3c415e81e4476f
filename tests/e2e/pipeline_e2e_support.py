"""Ground truth and drivers for the end-to-end pipeline tests (a uniquely named module).

Ground truth never comes from the pipeline: ``read_source`` pages every collection from the
sandbox with plain ``httpx``, and ``expected_warehouse`` turns those raw records into the
rows the warehouse must hold, following the data contract (``schemas/clean.py``) written out
again by hand: which records are bad, which fields land in which column. The tests compare
the warehouse against it after every run, so a lost, duplicated, stale or mangled row fails.

``run_sync`` drives ``pipeline.sync.EntitySync`` in-process (no Prefect): the same code the
flow's tasks call, without the orchestration cost, so the data guarantees can be checked on
both backends quickly. The Prefect and CLI paths have their own tests.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.finale import FinaleClient
from connectors.finale.settings import FinaleSettings
from pipeline.entities import ENTITIES
from pipeline.sync import EntityRunResult, EntitySync, QuarantineThresholdExceeded, SyncOptions
from sandbox.server import SandboxHandle, ssl_context
from schemas import tables

#: Collection each entity is read from.
COLLECTIONS = {
    "facilities": "facility",
    "vendors": "partygroup",
    "products": "product",
    "stock": "inventoryitem",
    "purchase_orders": "order",
}

#: Warehouse tables the tests compare, by entity (purchase-order lines ride with the orders).
TABLES: dict[str, sa.Table] = {
    "facilities": tables.facilities,
    "vendors": tables.vendors,
    "products": tables.products,
    "stock": tables.stock_levels,
    "purchase_orders": tables.purchase_orders,
    "purchase_order_lines": tables.purchase_order_lines,
}

#: The columns compared with the source, per table (the key columns first).
COMPARED: dict[str, tuple[str, ...]] = {
    "facilities": ("facility_id", "facility_url", "name", "parent_facility_id", "status"),
    "vendors": ("party_id", "finale_url", "name", "status", "email", "phone"),
    "products": (
        "sku",
        "finale_url",
        "name",
        "status",
        "category",
        "cost",
        "primary_vendor_party_id",
        "last_updated_at",
    ),
    "stock": (
        "sku",
        "facility_id",
        "quantity_on_hand",
        "quantity_on_order",
        "quantity_reserved",
        "quantity_available",
    ),
    "purchase_orders": (
        "order_id",
        "finale_url",
        "status",
        "vendor_party_id",
        "destination_facility_id",
        "line_count",
        "total_amount",
        "due_date",
        "last_updated_at",
    ),
    "purchase_order_lines": ("order_id", "line_no", "sku", "quantity", "unit_price"),
}
KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in table.primary_key.columns) for name, table in TABLES.items()
}

ABSURD = 1e9
PRODUCT_STATUSES = {"PRODUCT_ACTIVE", "PRODUCT_INACTIVE"}
PARTY_STATUSES = {"PARTY_ENABLED", "PARTY_DISABLED"}
ORDER_STATUSES = {"ORDER_CREATED", "ORDER_LOCKED", "ORDER_COMPLETED", "ORDER_CANCELLED"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
PLACEHOLDERS = {"", "--", "-", "N/A", "n/a"}


# --- reading the source ----------------------------------------------------------------------


def read_collection(handle: SandboxHandle, collection: str) -> list[dict[str, Any]]:
    """Every record of ``collection`` as the sandbox serves it (plain HTTP, limit/offset)."""
    cfg = handle.config
    page = cfg.max_entities
    rows: list[dict[str, Any]] = []
    with httpx.Client(
        base_url=handle.api_url,
        auth=(cfg.api_key, cfg.api_secret),
        timeout=60.0,
        verify=ssl_context(),
    ) as http:
        while True:
            response = http.get(f"/{collection}/", params={"limit": page, "offset": len(rows)})
            assert response.status_code == 200, response.text[:500]
            body = response.json()
            names = list(body)
            length = len(body[names[0]]) if names else 0
            rows.extend({n: body[n][i] for n in names} for i in range(length))
            if length < page:
                return rows


@dataclass
class Source:
    """The raw records of every collection, read at one moment."""

    records: dict[str, list[dict[str, Any]]]

    def of(self, entity: str) -> list[dict[str, Any]]:
        """The raw records that belong to ``entity`` (its rows of the collection)."""
        raw = self.records[COLLECTIONS[entity]]
        if entity == "vendors":
            return [r for r in raw if "SUPPLIER" in (r.get("roleTypeIdList") or [])]
        if entity == "purchase_orders":
            return [r for r in raw if r.get("orderTypeId") == "PURCHASE_ORDER"]
        return raw


def read_source(handle: SandboxHandle) -> Source:
    """Read every collection the pipeline syncs."""
    return Source({c: read_collection(handle, c) for c in COLLECTIONS.values()})


# --- the contract, written out again -------------------------------------------------------


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip()


def _number(value: Any) -> tuple[float | None, bool]:
    """(parsed number, is_bad): placeholders are missing, junk is bad."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, False
    if isinstance(value, str):
        text = value.strip()
        if text in PLACEHOLDERS:
            return None, False
        try:
            return float(text.replace(",", "")), False
        except ValueError:
            return None, True
    return float(value), False


def _in_range(value: float | None, low: float, high: float = ABSURD) -> bool:
    return value is None or low <= value <= high


def _wire_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def _url_id(url: str | None) -> str | None:
    return url.rstrip("/").rsplit("/", 1)[-1] if url else None


def _money(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.0001"))


def _exact(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def stock_entry_key(item: dict[str, Any]) -> str:
    """The quarantine source_key of a stock entry: its documented identity, as sent."""
    key = f"{item.get('productUrl') or '?'}@{item.get('facilityUrl') or '?'}"
    for label, name in (
        ("lot", "lotId"),
        ("packing", "normalizedPackingString"),
        ("order", "orderUrl"),
    ):
        if item.get(name) is not None:
            key += f" {label}={item[name]}"
    return key


@dataclass
class Expected:
    """What the warehouse must hold for a source: rows per table and quarantined keys."""

    rows: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=dict)
    #: entity -> quarantine source_key -> the fields its reasons must name.
    quarantined: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    extracted: dict[str, int] = field(default_factory=dict)
    #: Stock is counted in entries: good entries per (sku, facility) pair, and the pairs
    #: held back (left as stored) because one of their entries is quarantined.
    entries: dict[tuple[Any, ...], int] = field(default_factory=dict)
    held: set[tuple[Any, ...]] = field(default_factory=set)

    def loaded_count(self, entity: str) -> int:
        """What a first full run's ``inserted`` must be (stock: entries of loaded pairs)."""
        if entity == "stock":
            return sum(self.entries[p] for p in self.rows["stock"])
        return len(self.rows[entity])

    def quarantined_count(self, entity: str) -> int:
        """What a full run's ``quarantined`` must be (stock: bad and held-back entries)."""
        held = sum(self.entries.get(p, 0) for p in self.held) if entity == "stock" else 0
        return len(self.quarantined[entity]) + held


def expected_warehouse(source: Source, known: Expected | None = None) -> Expected:
    """The rows each warehouse table must hold (compared columns), and the bad records.

    ``known``: what the warehouse held before, when products may have vanished since: their
    URLs still resolve stock entries (the warehouse keeps deleted products).
    """
    out = Expected()
    facility_ids = {f["facilityUrl"]: f["facilityId"] for f in source.records["facility"]}

    def facility(url: str | None) -> str | None:
        return facility_ids.get(url, _url_id(url)) if url else None

    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    bad: dict[str, set[str]] = {}
    for f in source.of("facilities"):
        name = _text(f.get("facilityName"))
        if not name:
            bad[str(f["facilityId"])] = {"name"}
            continue
        row = (
            f["facilityId"],
            f["facilityUrl"],
            name,
            facility(f.get("parentFacilityUrl")),
            f.get("statusId"),
        )
        rows[row[:1]] = row
    _put(out, "facilities", rows, bad, len(source.of("facilities")))

    rows, bad = {}, {}
    for p in source.of("vendors"):
        name = _text(p.get("groupName"))
        email, phone = (_contact(p, kind) for kind in ("EMAIL_ADDRESS", "TELECOM_NUMBER"))
        status = p.get("statusId")
        problems = set()
        if not name:
            problems.add("name")
        if status is not None and status not in PARTY_STATUSES:
            problems.add("status")
        if email is not None and not EMAIL.match(email):
            problems.add("email")
        if problems:
            bad[str(p["partyId"])] = problems
            continue
        row = (p["partyId"], p["partyUrl"], name, status, email, phone)
        rows[row[:1]] = row
    _put(out, "vendors", rows, bad, len(source.of("vendors")))

    rows, bad = {}, {}
    for p in source.of("products"):
        name = _text(p.get("internalName"))
        cost, cost_bad = _number(p.get("cost"))
        status = p.get("statusId")
        problems = set()
        if not name:
            problems.add("name")
        if cost_bad or not _in_range(cost, 0):
            problems.add("cost")
        if status is not None and status not in PRODUCT_STATUSES:
            problems.add("status")
        problems |= _reorder_problems(p)
        if problems:
            bad[str(p["productId"])] = problems
            continue
        row = (
            p["productId"],
            p["productUrl"],
            name,
            status,
            _text(p.get("userCategory")),
            _money(cost),
            _main_supplier(p),
            _wire_time(p.get("lastUpdatedDate")),
        )
        rows[row[:1]] = row
    _put(out, "products", rows, bad, len(source.of("products")))

    # Stock entries name their product by URL, resolved through the products that loaded
    # (never built from a SKU); they are summed per (sku, facility). A bad entry is
    # quarantined and its pair keeps its stored value (held back).
    catalogue = {
        row[1]: row[0]
        for rows_ in ([known.rows["products"]] if known else []) + [out.rows["products"]]
        for row in rows_.values()
    }
    sums: dict[tuple[str, str], list[float]] = {}
    bad = {}
    for item in source.of("stock"):
        sku = catalogue.get(item.get("productUrl"))
        pair = (sku, facility(item["facilityUrl"]) or "?")
        problems = set() if sku else {"sku"}
        quantities = []
        for name, low in (("OnHand", -ABSURD), ("OnOrder", 0.0), ("Reserved", 0.0)):
            value, junk = _number(item.get(f"quantity{name}"))
            if junk or not _in_range(value, low) or _money(value) != _exact(value):
                problems.add("quantity")
            quantities.append(value or 0.0)
        if problems:
            bad[stock_entry_key(item)] = problems
            if sku and item.get("facilityUrl"):
                out.held.add(pair)
            continue
        out.entries[pair] = out.entries.get(pair, 0) + 1
        total = sums.setdefault(pair, [0.0, 0.0, 0.0])
        for i, value in enumerate(quantities):
            total[i] += value
    rows = {
        pair: (*pair, _money(h), _money(o), _money(r), _money(h - r))
        for pair, (h, o, r) in sums.items()
        if pair not in out.held
    }
    _put(out, "stock", rows, bad, len(source.of("stock")))

    rows, bad = {}, {}
    line_rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for o in source.of("purchase_orders"):
        status = o.get("statusId")
        items = [i for i in o.get("orderItemList") or [] if isinstance(i, dict)]
        lines = [(_number(i.get("quantity")), _number(i.get("unitPrice"))) for i in items]
        problems = set()
        for (q, q_junk), (price, p_junk) in lines:
            if q_junk or not _in_range(q, 0):
                problems.add("quantity")
            if p_junk or not _in_range(price, 0):
                problems.add("unit_price")
        if status is not None and status not in ORDER_STATUSES:
            problems.add("status")
        adjustments = sum(
            float(a.get("amount") or 0)
            for a in o.get("orderAdjustmentList") or []
            if isinstance(a, dict)
        )
        total = sum((q or 0) * (price or 0) for (q, _), (price, _) in lines) + adjustments
        if not _in_range(total, -ABSURD):
            problems.add("total_amount")
        if problems:
            bad[str(o["orderId"])] = problems
            continue
        supplier = next(
            (
                r.get("partyId")
                for r in o.get("orderRoleList") or []
                if isinstance(r, dict) and r.get("roleTypeId") == "SUPPLIER"
            ),
            None,
        )
        row = (
            o["orderId"],
            o["orderUrl"],
            status,
            _text(supplier),
            facility(o.get("destinationFacilityUrl")),
            len(items),
            round(total, 2),
            _wire_time(o.get("dueDate")),
            _wire_time(o.get("lastUpdatedDate")),
        )
        rows[row[:1]] = row
        for n, (item, ((q, _), (price, _))) in enumerate(zip(items, lines, strict=True), 1):
            key = (o["orderId"], n)
            line_rows[key] = (*key, item.get("productId"), _money(q), _money(price))
    _put(out, "purchase_orders", rows, bad, len(source.of("purchase_orders")))
    out.rows["purchase_order_lines"] = line_rows
    return out


def _put(
    out: Expected,
    entity: str,
    rows: dict[tuple[Any, ...], tuple[Any, ...]],
    bad: dict[str, set[str]],
    extracted: int,
) -> None:
    out.rows[entity] = rows
    out.quarantined[entity] = bad
    out.extracted[entity] = extracted


def _contact(party: dict[str, Any], kind: str) -> str | None:
    for mech in party.get("contactMechList") or []:
        if (
            isinstance(mech, dict)
            and mech.get("contactMechTypeId") == kind
            and mech.get("infoString")
        ):
            return _text(mech["infoString"])
    return None


def _reorder_problems(product: dict[str, Any]) -> set[str]:
    guidelines = [g for g in product.get("reorderGuidelineList") or [] if isinstance(g, dict)]
    chosen = [g for g in guidelines if not g.get("facilityUrl")] or guidelines
    problems = set()
    for name, column in (
        ("reorderPoint", "reorder_point"),
        ("reorderQuantity", "reorder_quantity"),
    ):
        values = [_number(g.get(name)) for g in chosen if g.get(name) is not None]
        if any(junk for _, junk in values) or not _in_range(sum(v or 0 for v, _ in values), 0):
            problems.add(column)
    return problems


def _main_supplier(product: dict[str, Any]) -> str | None:
    suppliers = [s for s in product.get("supplierList") or [] if isinstance(s, dict)]
    main = next(
        (s for s in suppliers if "MAIN" in str(s.get("supplierPrefOrderId") or "").upper()),
        suppliers[0] if suppliers else None,
    )
    return _url_id(main.get("supplierPartyUrl")) if main else None


# --- reading the warehouse ------------------------------------------------------------------


def _normal(value: Any) -> Any:
    if isinstance(value, Decimal | float) and not isinstance(value, bool):
        return Decimal(str(value)).quantize(Decimal("0.0001"))
    return value


def warehouse_rows(
    conn: sa.Connection, name: str, *, live: bool = True
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The compared columns of ``name``'s live (or all) rows, keyed like ``Expected.rows``."""
    table = TABLES[name]
    query = sa.select(*(table.c[c] for c in COMPARED[name]))
    if live:
        query = query.where(table.c.deleted_at.is_(None))
    width = len(KEYS[name])
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for record in conn.execute(query).tuples():
        row = tuple(_normal(v) for v in record)
        if name == "purchase_orders":
            row = (*row[:6], round(float(row[6]), 2), *row[7:])
        assert row[:width] not in out, f"duplicate key {row[:width]} in {name}"
        out[row[:width]] = row
    return out


def assert_warehouse_matches(conn: sa.Connection, expected: Expected) -> None:
    """Every table holds exactly the expected live rows, column for column."""
    for name in COMPARED:
        actual = warehouse_rows(conn, name)
        wanted = expected.rows[name]
        missing = sorted(set(wanted) - set(actual), key=str)[:5]
        extra = sorted(set(actual) - set(wanted), key=str)[:5]
        assert not missing and not extra, f"{name}: missing {missing}, unexpected {extra}"
        differing = [(wanted[k], actual[k]) for k in wanted if wanted[k] != actual[k]][:3]
        assert not differing, f"{name}: rows differ from the source (expected, actual): {differing}"


def synced_at(conn: sa.Connection) -> dict[str, dict[tuple[Any, ...], datetime]]:
    """``synced_at`` of every row of every compared table, by key."""
    out = {}
    for name, table in TABLES.items():
        keys = [table.c[k] for k in KEYS[name]]
        out[name] = {
            tuple(r[:-1]): r[-1] for r in conn.execute(sa.select(*keys, table.c.synced_at)).tuples()
        }
    return out


def rewritten(
    before: dict[str, dict[tuple[Any, ...], datetime]],
    after: dict[str, dict[tuple[Any, ...], datetime]],
) -> dict[str, set[tuple[Any, ...]]]:
    """Keys per table that are new or whose ``synced_at`` moved between two snapshots."""
    return {
        name: {k for k, stamp in after[name].items() if before[name].get(k) != stamp}
        for name in after
    }


def quarantine_rows(conn: sa.Connection, run_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of the quarantine table (of one run, if given)."""
    query = sa.select(tables.quarantine)
    if run_id is not None:
        query = query.where(tables.quarantine.c.run_id == run_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def run_rows(conn: sa.Connection, run_id: str) -> dict[str, dict[str, Any]]:
    """The ``sync_runs`` rows of one run, by entity."""
    query = sa.select(tables.sync_runs).where(tables.sync_runs.c.run_id == run_id)
    return {r["entity"]: dict(r) for r in conn.execute(query).mappings()}


def live_count(conn: sa.Connection, table: sa.Table) -> int:
    """Rows of ``table`` not marked deleted."""
    query = sa.select(sa.func.count()).select_from(table).where(table.c.deleted_at.is_(None))
    return int(conn.execute(query).scalar_one())


def duplicates(keys: Iterable[Any]) -> list[Any]:
    """Keys that occur more than once."""
    return [k for k, n in Counter(keys).items() if n > 1]


# --- driving the pipeline ------------------------------------------------------------------


def finale_settings(handle: SandboxHandle) -> FinaleSettings:
    """Connector settings for ``handle`` (no client-side rate limit)."""
    cfg = handle.config
    return FinaleSettings(
        base_url=handle.base_url,
        account=cfg.account,
        api_key=cfg.api_key,
        api_secret=SecretStr(cfg.api_secret),
        rate_limit_per_minute=1_000_000.0,
        timezone=cfg.timezone,
        timeout_seconds=30.0,
        max_retries=3,
    )


@dataclass
class SyncRun:
    """One run over several entities: its id and each entity's result."""

    run_id: str
    results: dict[str, EntityRunResult]


def run_sync(
    engine: sa.Engine,
    handle: SandboxHandle,
    *,
    entities: Iterable[str] = ENTITIES,
    **options: Any,
) -> SyncRun:
    """Sync ``entities`` in dependency order, in-process, as the flow's tasks would.

    A run that fails its quarantine threshold is recorded and reported like any other
    (its ``status`` says failed); the next entity still runs, as in the flow.
    """
    options.setdefault("quarantine_fail_ratio", 0.5)
    opts = SyncOptions(tz=handle.config.timezone, **options)
    run = SyncRun(str(uuid.uuid4()), {})
    settings = finale_settings(handle)
    for name in entities:
        with (
            FinaleClient(settings) as client,
            EntitySync(ENTITIES[name], client, engine, run_id=run.run_id, options=opts) as sync,
        ):
            for chunk in sync.chunks():
                sync.process(chunk)
            try:
                run.results[name] = sync.finish()
            except QuarantineThresholdExceeded:
                run.results[name] = sync.result
    return run


def assert_quarantine_matches(
    conn: sa.Connection, run_id: str, expected: Expected, source: Source, entities: Iterable[str]
) -> None:
    """The run quarantined exactly the bad records, naming the bad fields, with the raw
    record as its JSON payload."""
    stored = quarantine_rows(conn, run_id)
    for entity in entities:
        rows = [q for q in stored if q["entity"] == entity]
        wanted = expected.quarantined[entity]
        assert {q["source_key"] for q in rows} == set(wanted), entity
        if entity == "stock":
            entries = {stock_entry_key(r): r for r in source.of("stock")}
            for q in rows:
                assert q["payload"] == entries[q["source_key"]], q
                missing = [w for w in wanted[q["source_key"]] if w not in q["reasons"]]
                assert not missing, f"stock {q['source_key']}: {q['reasons']!r} lacks {missing}"
            continue
        assert not duplicates(q["source_key"] for q in rows), entity
        raw = {str(r[_KEY_FIELD[entity]]): r for r in source.of(entity)}
        for q in rows:
            missing = [w for w in wanted[q["source_key"]] if w not in q["reasons"]]
            assert not missing, f"{entity} {q['source_key']}: {q['reasons']!r} lacks {missing}"
            assert q["payload"] == raw[q["source_key"]], f"{entity} {q['source_key']} payload"


_KEY_FIELD = {
    "facilities": "facilityId",
    "vendors": "partyId",
    "products": "productId",
    "purchase_orders": "orderId",
}


# --- what a run over changed records must do ----------------------------------------------


def changed_records(before: Source, after: Source, entity: str) -> set[str]:
    """Keys of ``entity``'s records that are new or differ in any field between two reads."""
    key = _KEY_FIELD[entity]
    old = {str(r[key]): r for r in before.of(entity)}
    return {str(r[key]) for r in after.of(entity) if old.get(str(r[key])) != r}


@dataclass
class Outcome:
    """Keys a run must insert, update, leave unchanged and quarantine."""

    inserted: set[Any] = field(default_factory=set)
    updated: set[Any] = field(default_factory=set)
    unchanged: set[Any] = field(default_factory=set)
    quarantined: set[Any] = field(default_factory=set)
    #: Records per key (stock: entries per pair; 1 otherwise), and quarantined records
    #: that belong to no key (stock entries whose product did not resolve or are bad).
    weights: dict[Any, int] = field(default_factory=dict)
    loose_quarantined: int = 0

    @property
    def written(self) -> set[Any]:
        """Keys whose rows are (re)written."""
        return self.inserted | self.updated

    def counts(self) -> dict[str, int]:
        """The counts an ``EntityRunResult`` must report."""

        def weight(keys: set[Any]) -> int:
            return sum(self.weights.get(k, 1) for k in keys)

        quarantined = weight(self.quarantined) + self.loose_quarantined
        loaded = weight(self.inserted) + weight(self.updated) + weight(self.unchanged)
        return {
            "extracted": loaded + quarantined,
            "inserted": weight(self.inserted),
            "updated": weight(self.updated),
            "unchanged": weight(self.unchanged),
            "quarantined": quarantined,
        }


def outcome(before: Expected, after: Expected, entity: str, read: Iterable[Any]) -> Outcome:
    """What a run that reads the records ``read`` (keys as in ``Expected.rows``) must do."""
    out = Outcome()
    bad = after.quarantined[entity]
    if entity == "stock":  # counted in entries; pairs with a bad entry are held back
        out.weights = {**dict.fromkeys(after.held, 0), **after.entries}
        out.loose_quarantined = len(bad)
    for key in read:
        if key in after.held if entity == "stock" else key[0] in bad:
            out.quarantined.add(key)
        elif key not in before.rows[entity]:
            out.inserted.add(key)
        elif before.rows[entity][key] != after.rows[entity][key]:
            out.updated.add(key)
        else:
            out.unchanged.add(key)
    return out


def result_counts(result: EntityRunResult) -> dict[str, int]:
    """The counts of a run result, shaped like ``Outcome.counts``."""
    return {
        "extracted": result.extracted,
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "quarantined": result.quarantined,
    }


def watermarks(conn: sa.Connection) -> dict[str, datetime | None]:
    """The stored watermark of each entity."""
    query = sa.select(tables.sync_state.c.entity, tables.sync_state.c.watermark)
    return dict(conn.execute(query).tuples().all())


def all_keys(expected: Expected, entity: str) -> set[tuple[Any, ...]]:
    """Keys of every source record of ``entity``, loaded or quarantined."""
    if entity == "stock":  # pairs: loaded or held back (bad entries are counted loose)
        return set(expected.rows[entity]) | expected.held
    return set(expected.rows[entity]) | {(k,) for k in expected.quarantined[entity]}


# --- subprocesses ---------------------------------------------------------------------------

#: Variables a developer's shell might carry into a child process and change what it does.
OWN_PREFIXES = ("FINALE_", "WAREHOUSE_", "SYNC_", "QUARANTINE_", "PREFECT_", "ALERT_")
OWN_NAMES = ("SENDGRID_API_KEY", "SLACK_WEBHOOK_URL", "LOCK_WAIT_SECONDS", "STALE_RUN_MINUTES")


def child_env(handle: SandboxHandle | None, warehouse_url: str, **extra: str) -> dict[str, str]:
    """The environment of a child process pointed at a sandbox and a warehouse only."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES) and k not in OWN_NAMES
    }
    env["WAREHOUSE_URL"] = warehouse_url
    if handle is not None:
        env.update(handle.env, FINALE_RATE_LIMIT_PER_MINUTE="100000")
    env.update(extra)
    return env
