"""The warehouse schema: the load target and the data contract for analytics.

These SQLAlchemy Core tables are the single definition of the warehouse. The Alembic
migrations in ``warehouse/migrations`` create exactly these tables (a test compares them),
and the loaders read column lists from here. Works on PostgreSQL and SQLite.

Conventions:
- Business keys are Finale's ids (text). Timestamps are timezone-aware UTC.
- Every table carries ``synced_at``: when this row was last written by a sync.
- Warehouse tables fed from Finale carry ``content_hash``, a hash of the mapped columns,
  so an upsert can skip rows whose content did not change, and ``deleted_at``, set by a
  full sync when the record vanished from Finale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always stores and returns aware UTC datetimes.

    PostgreSQL's ``timestamptz`` keeps the instant but returns it in the session time zone;
    SQLite has no time zone support, and SQLAlchemy would store an aware value's wall-clock
    time and drop its offset. Converting to UTC on the way in (naive UTC text on SQLite) and
    attaching UTC on the way out makes both backends round-trip the same aware value.
    Naive datetimes are refused: their meaning depends on a zone nobody wrote down.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware (UTC) value")
        # In UTC on every database: SQLite's DATETIME stores the wall time and drops the zone.
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


TS = UTCDateTime()
MONEY = sa.Numeric(18, 4)
QTY = sa.Numeric(18, 4)


def _sync_columns() -> list[sa.Column]:
    """Bookkeeping columns every warehouse table fed from Finale carries."""
    return [
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("synced_at", TS, nullable=False),
    ]


facilities = sa.Table(
    "facilities",
    metadata,
    sa.Column("facility_id", sa.Text, primary_key=True),
    sa.Column("facility_url", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("parent_facility_id", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("last_updated_at", TS),
    *_sync_columns(),
)

vendors = sa.Table(
    "vendors",
    metadata,
    sa.Column("party_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("finale_url", sa.Text, nullable=False),
    sa.Column("last_updated_at", TS),
    *_sync_columns(),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("finale_url", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("cost", MONEY),
    sa.Column("primary_vendor_party_id", sa.Text),
    sa.Column("reorder_point", QTY),
    sa.Column("reorder_quantity", QTY),
    sa.Column("created_at", TS),
    sa.Column("last_updated_at", TS),
    *_sync_columns(),
)

stock_levels = sa.Table(
    "stock_levels",
    metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("facility_id", sa.Text, primary_key=True),
    sa.Column("quantity_on_hand", QTY, nullable=False),
    sa.Column("quantity_on_order", QTY, nullable=False),
    sa.Column("quantity_reserved", QTY, nullable=False),
    sa.Column("quantity_available", QTY, nullable=False),
    *_sync_columns(),
)

purchase_orders = sa.Table(
    "purchase_orders",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("finale_url", sa.Text, nullable=False),
    sa.Column("status", sa.Text),
    sa.Column("vendor_party_id", sa.Text),
    sa.Column("order_date", TS),
    sa.Column("due_date", TS),
    sa.Column("receive_date", TS),
    sa.Column("destination_facility_id", sa.Text),
    sa.Column("total_amount", MONEY),
    sa.Column("line_count", sa.Integer),
    # Hash of the order's lines, so a change to a line alone counts the order as updated.
    sa.Column("lines_checksum", sa.String(32)),
    sa.Column("last_updated_at", TS),
    *_sync_columns(),
)

purchase_order_lines = sa.Table(
    "purchase_order_lines",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text),
    sa.Column("product_url", sa.Text),
    sa.Column("quantity", QTY),
    sa.Column("unit_price", MONEY),
    *_sync_columns(),
)

#: The app's purchase-order requests (Supabase, ``writeback/``), as the app wrote them: the
#: columns whose changes move the request's ``updated_at`` (write-back's own bookkeeping does
#: not, so it is not copied). A request's Finale order is ``purchase_orders.order_id`` =
#: ``'APP-' || request_id`` (write-back derives it so).
app_purchase_order_requests = sa.Table(
    "app_purchase_order_requests",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("vendor_party_id", sa.Text, nullable=False),
    sa.Column("destination_facility_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", TS),
    sa.Column("last_updated_at", TS),
    *_sync_columns(),
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("entity", sa.Text, primary_key=True),
    sa.Column("watermark", TS),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("synced_at", TS, nullable=False),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("flow_run_id", sa.Text),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("extracted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("quarantined", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("watermark_before", TS),
    sa.Column("watermark_after", TS),
    sa.Column("source_count", sa.Integer),
    sa.Column("warehouse_count", sa.Integer),
    sa.Column("source_checksum", sa.Text),
    sa.Column("warehouse_checksum", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("synced_at", TS, nullable=False),
    sa.UniqueConstraint("run_id", "entity", name="uq_sync_runs_run_entity"),
)
sa.Index("ix_sync_runs_entity_started", sync_runs.c.entity, sync_runs.c.started_at)

#: One entry per bad record: while open (``resolved_at`` null) there is exactly one per
#: ``(entity, record_key)``, updated each time a run reads the record and it fails again;
#: set resolved once the record loads cleanly. A later failure opens a new entry, so the
#: resolved ones are the record's history.
quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # The run that last saw the record fail.
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("source_key", sa.Text),
    # source_key, or "payload:<md5 of the payload JSON>" for a record without one.
    sa.Column("record_key", sa.Text, nullable=False),
    # The latest failure's reasons ("; "-joined) and record as read.
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("first_seen_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("times_seen", sa.Integer, nullable=False, server_default="1"),
    sa.Column("resolved_at", TS),
    sa.Column("synced_at", TS, nullable=False),
)
sa.Index("ix_quarantine_entity_run", quarantine.c.entity, quarantine.c.run_id)
sa.Index(
    "uq_quarantine_open_record",
    quarantine.c.entity,
    quarantine.c.record_key,
    unique=True,
    postgresql_where=quarantine.c.resolved_at.is_(None),
    sqlite_where=quarantine.c.resolved_at.is_(None),
)

backfill_windows = sa.Table(
    "backfill_windows",
    metadata,
    sa.Column("backfill_id", sa.Text, primary_key=True),
    sa.Column("entity", sa.Text, primary_key=True),
    sa.Column("window_start", TS, primary_key=True),
    sa.Column("window_end", TS, nullable=False),
    sa.Column("completed_at", TS, nullable=False),
    sa.Column("extracted", sa.Integer, nullable=False),
    sa.Column("inserted", sa.Integer, nullable=False),
    sa.Column("updated", sa.Integer, nullable=False),
    sa.Column("unchanged", sa.Integer, nullable=False),
    sa.Column("quarantined", sa.Integer, nullable=False),
    sa.Column("synced_at", TS, nullable=False),
)

#: Data-quality results (``pipeline.dq``): one row per report, entity, check and subject
#: (the column, pandera rule or reference a check measured; "" for a check measured once
#: per entity). A report is the daily ``data-quality-report`` flow (origin "report") or
#: the checks a sync runs after loading an entity (origin "sync", report_id = the sync's
#: run id). Writing a report again replaces its rows.
dq_results = sa.Table(
    "dq_results",
    metadata,
    sa.Column("report_id", sa.Text, primary_key=True),
    sa.Column("entity", sa.Text, primary_key=True),
    sa.Column("check_name", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, primary_key=True, server_default=""),
    sa.Column("reported_at", TS, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("measured", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
sa.Index(
    "ix_dq_results_entity_check_reported",
    dq_results.c.entity,
    dq_results.c.check_name,
    dq_results.c.reported_at,
)
sa.Index("ix_dq_results_reported", dq_results.c.reported_at)

# -- outbound events (``events/``) ----------------------------------------------------------

#: Autoincrementing ids: ``BIGINT`` on PostgreSQL, SQLite's rowid alias (``INTEGER``) there.
EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: The transactional outbox: each event is written in the transaction that commits the data
#: it describes (``events.outbox.record_event``), so a rolled-back change has no event and a
#: committed one always has. ``id`` orders events; ``entity_key`` is the ordering key
#: delivery keeps per subscriber (events about one record arrive in the order they happened).
outbox_events = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", EVENT_ID, primary_key=True, autoincrement=True),
    # Also the Idempotency-Key of every delivery of the event.
    sa.Column("event_id", sa.Text, nullable=False, unique=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    # The record the event is about ("" for an event about a whole run or report).
    sa.Column("entity_key", sa.Text, nullable=False, server_default=""),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("payload", sa.JSON, nullable=False),
)
sa.Index("ix_outbox_events_occurred", outbox_events.c.occurred_at)

#: What the events so far have announced, per watch rule and record (``events.watch``): the
#: next sync compares the warehouse with it, so an event fires once per change, and a change
#: whose event was lost with a rolled-back transaction is announced by the next run.
event_watch = sa.Table(
    "event_watch",
    metadata,
    sa.Column("rule", sa.Text, primary_key=True),
    sa.Column("entity_key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

#: One row per event and subscriber, from the moment the delivery flow hands the event to
#: that subscriber: ``pending`` until its endpoint acknowledges it (``delivered``) or it has
#: used its attempts (``dead``, with a row in ``event_dead_letters``).
event_deliveries = sa.Table(
    "event_deliveries",
    metadata,
    sa.Column("event_id", EVENT_ID, sa.ForeignKey("outbox_events.id"), primary_key=True),
    sa.Column("subscriber", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("delivered_at", TS),
    sa.Column("created_at", TS, nullable=False),
)
sa.Index(
    "ix_event_deliveries_subscriber_status",
    event_deliveries.c.subscriber,
    event_deliveries.c.status,
    event_deliveries.c.event_id,
)

#: Per subscriber: how far events have been handed to it, and its circuit breaker.
event_subscribers = sa.Table(
    "event_subscribers",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    # The last outbox id considered for this subscriber (a new subscriber starts at the end).
    sa.Column("fanned_out_to", EVENT_ID, nullable=False),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("circuit_open_until", TS),
    sa.Column("updated_at", TS, nullable=False),
)

#: Deliveries that used all their attempts; ``invsync events replay`` sends them again.
event_dead_letters = sa.Table(
    "event_dead_letters",
    metadata,
    sa.Column("id", EVENT_ID, primary_key=True, autoincrement=True),
    sa.Column("event_id", EVENT_ID, sa.ForeignKey("outbox_events.id"), nullable=False),
    sa.Column("subscriber", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("died_at", TS, nullable=False),
    sa.Column("replayed_at", TS),
)
sa.Index(
    "ix_event_dead_letters_subscriber",
    event_dead_letters.c.subscriber,
    event_dead_letters.c.died_at,
)
