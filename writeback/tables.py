"""The app-side tables as SQLAlchemy Core objects, for write-back's queries.

Created by the migrations in ``writeback/migrations`` (``invsync db upgrade --app``), which
hold the authoritative DDL (checks, triggers); documented in ``docs/supabase.md``.
"""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables import UTCDateTime

metadata = sa.MetaData()
TS = UTCDateTime()

#: Request statuses the app sets.
REQUEST_STATUSES = DRAFT, READY_TO_COMMIT, CANCELLED = "draft", "ready_to_commit", "cancelled"
#: Sync statuses write-back sets.
PENDING, SYNCED, FAILED, CONFLICT = "pending", "synced", "failed", "conflict"

requests = sa.Table(
    "purchase_order_requests",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("vendor_party_id", sa.Text, nullable=False),
    sa.Column("destination_facility_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("finale_order_id", sa.Text),
    sa.Column("finale_order_url", sa.Text),
    sa.Column("finale_status", sa.Text),
    sa.Column("sync_status", sa.Text, nullable=False),
    sa.Column("sync_error", sa.Text),
    sa.Column("synced_hash", sa.Text),
    sa.Column("synced_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

lines = sa.Table(
    "purchase_order_request_lines",
    metadata,
    sa.Column("request_id", sa.BigInteger, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.Numeric(18, 4), nullable=False),
    sa.Column("unit_price", sa.Numeric(18, 4)),
)

conflicts = sa.Table(
    "purchase_order_request_conflicts",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("request_id", sa.BigInteger, nullable=False),
    sa.Column("detected_at", TS, nullable=False),
    sa.Column("finale_order_id", sa.Text),
    sa.Column("finale_status", sa.Text),
    sa.Column("app_status", sa.Text, nullable=False),
    sa.Column("app_hash", sa.Text, nullable=False),
    sa.Column("synced_hash", sa.Text),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("resolved_at", TS),
)
