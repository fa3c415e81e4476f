"""The app's purchase-order requests, read from Supabase by ``supabase-sync``.

One new table, ``app_purchase_order_requests`` (``schemas/tables.py``); nothing else
changes. Downgrade drops it.

Revision ID: 0004_app_purchase_order_requests
Revises: 0003_quarantine_open_entries
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_app_purchase_order_requests"
down_revision: str | None = "0003_quarantine_open_entries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "app_purchase_order_requests",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("vendor_party_id", sa.Text, nullable=False),
        sa.Column("destination_facility_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", TS),
        sa.Column("last_updated_at", TS),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("synced_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("app_purchase_order_requests")
