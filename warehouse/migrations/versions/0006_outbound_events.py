"""Outbound events: the transactional outbox, watch state, deliveries, dead letters.

Written by ``events.outbox`` (in the transaction of the data an event describes) and read
by the ``deliver-events`` flow (``events.delivery``).

Revision ID: 0006_outbound_events
Revises: 0005_dq_results
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_outbound_events"
down_revision: str | None = "0005_dq_results"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("entity_key", sa.Text, nullable=False, server_default=""),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_outbox_events_occurred", "outbox_events", ["occurred_at"])
    op.create_table(
        "event_watch",
        sa.Column("rule", sa.Text, primary_key=True),
        sa.Column("entity_key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("event_id", ID, sa.ForeignKey("outbox_events.id"), primary_key=True),
        sa.Column("subscriber", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("delivered_at", TS),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(
        "ix_event_deliveries_subscriber_status",
        "event_deliveries",
        ["subscriber", "status", "event_id"],
    )
    op.create_table(
        "event_subscribers",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("fanned_out_to", ID, nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("circuit_open_until", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "event_dead_letters",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, sa.ForeignKey("outbox_events.id"), nullable=False),
        sa.Column("subscriber", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("died_at", TS, nullable=False),
        sa.Column("replayed_at", TS),
    )
    op.create_index(
        "ix_event_dead_letters_subscriber", "event_dead_letters", ["subscriber", "died_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_event_dead_letters_subscriber", table_name="event_dead_letters")
    op.drop_table("event_dead_letters")
    op.drop_table("event_subscribers")
    op.drop_index("ix_event_deliveries_subscriber_status", table_name="event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_table("event_watch")
    op.drop_index("ix_outbox_events_occurred", table_name="outbox_events")
    op.drop_table("outbox_events")
