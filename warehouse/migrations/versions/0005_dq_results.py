"""Data-quality results: one row per report, entity, check and subject.

Written by ``pipeline.dq`` after each sync (origin ``sync``) and by the daily
``data-quality-report`` flow (origin ``report``); read by the entity status (a failed
check makes the entity degraded) and exported to the analytics dataset.

Revision ID: 0005_dq_results
Revises: 0004_app_purchase_order_requests
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_dq_results"
down_revision: str | None = "0004_app_purchase_order_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dq_results",
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
    op.create_index(
        "ix_dq_results_entity_check_reported",
        "dq_results",
        ["entity", "check_name", "reported_at"],
    )
    op.create_index("ix_dq_results_reported", "dq_results", ["reported_at"])


def downgrade() -> None:
    op.drop_index("ix_dq_results_reported", table_name="dq_results")
    op.drop_index("ix_dq_results_entity_check_reported", table_name="dq_results")
    op.drop_table("dq_results")
