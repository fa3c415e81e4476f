"""Quarantine: one open entry per bad record instead of one row per read.

Until now every read of a bad record added a row, so an unchanged bad record was stored
again on every overlapping window, stock read and backfill. From here on there is one
*open* entry per ``(entity, record_key)`` (``resolved_at`` null, enforced by a partial
unique index) that later failures update (``last_seen_at``, ``times_seen``, latest
reasons, payload and run), resolved when the record loads cleanly.

Columns: ``created_at`` becomes ``first_seen_at``; new ``record_key`` (``source_key``, or
``payload:<md5 of the payload JSON>`` for records without one), ``last_seen_at``,
``times_seen`` and ``resolved_at``.

Existing rows:
- Per ``(entity, record_key)`` the newest row (highest ``id``: rows were appended in time
  order) is kept as the open entry, with ``times_seen`` = the number of rows,
  ``first_seen_at`` = the earliest ``created_at`` and ``last_seen_at`` = its own.
- The older duplicates are DELETED, not kept as resolved entries: they are repeated
  sightings of one failure, not history. The old table never recorded a record loading
  cleanly in between, so "resolved" rows would claim resolutions that never happened.
  What they said is kept in ``times_seen`` and ``first_seen_at``; their older reasons and
  payloads are dropped.
- An entry whose record has loaded cleanly since (the entity table's row was written after
  the entry was last seen) is marked resolved at that row's ``synced_at``. Stock is left
  to the sync (it is read in full on every run; its key spans two columns).

Downgrade drops the new columns and renames ``first_seen_at`` back; the deleted duplicates
do not come back.

Revision ID: 0003_quarantine_open_entries
Revises: 0002_backfill_windows
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import context, op

revision: str = "0003_quarantine_open_entries"
down_revision: str | None = "0002_backfill_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
OPEN_INDEX = "uq_quarantine_open_record"
OPEN = sa.text("resolved_at IS NULL")
#: Entity -> (table, key column) whose rows prove a later clean load (stock: see above).
CLEAN_ROWS = {
    "facilities": ("facilities", "facility_id"),
    "vendors": ("vendors", "party_id"),
    "products": ("products", "sku"),
    "purchase_orders": ("purchase_orders", "order_id"),
}
#: Keyless rows fingerprinted per round trip.
BATCH = 5_000
#: Rows of the same entity and record key, as a correlated condition on ``quarantine``.
SAME_RECORD = "d.entity = quarantine.entity AND d.record_key = quarantine.record_key"


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.alter_column(
            "created_at", new_column_name="first_seen_at", existing_type=TS, existing_nullable=False
        )
        batch.add_column(sa.Column("record_key", sa.Text))
        batch.add_column(sa.Column("last_seen_at", TS))
        batch.add_column(sa.Column("times_seen", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("resolved_at", TS))

    op.execute("UPDATE quarantine SET record_key = source_key, last_seen_at = first_seen_at")
    if context.is_offline_mode():
        # No rows to read when only emitting SQL: hash the stored text in SQL (PostgreSQL).
        op.execute(
            "UPDATE quarantine SET record_key = 'payload:' || md5(CAST(payload AS TEXT))"
            " WHERE record_key IS NULL"
        )
    else:
        _fingerprint_keyless(op.get_bind())
    # Makes the correlated lookups below index scans instead of one table scan per row.
    op.create_index("ix_quarantine_0003_record", "quarantine", ["entity", "record_key", "id"])
    has_newer = (
        f"EXISTS (SELECT 1 FROM quarantine AS d WHERE {SAME_RECORD} AND d.id > quarantine.id)"
    )
    op.execute(
        sa.text(
            "UPDATE quarantine SET"
            f" times_seen = (SELECT count(*) FROM quarantine AS d WHERE {SAME_RECORD}),"
            " first_seen_at ="
            f" (SELECT min(d.first_seen_at) FROM quarantine AS d WHERE {SAME_RECORD})"
            f" WHERE NOT {has_newer}"
        )
    )
    op.execute(f"DELETE FROM quarantine WHERE {has_newer}")
    op.drop_index("ix_quarantine_0003_record", table_name="quarantine")
    for entity, (table, key) in CLEAN_ROWS.items():
        clean = f"FROM {table} AS t WHERE t.{key} = quarantine.record_key"
        op.execute(
            sa.text(
                f"UPDATE quarantine SET resolved_at = (SELECT t.synced_at {clean}),"
                f" synced_at = (SELECT t.synced_at {clean})"
                " WHERE entity = :entity AND EXISTS"
                f" (SELECT 1 {clean} AND t.synced_at > quarantine.last_seen_at)"
            ).bindparams(entity=entity)
        )

    with op.batch_alter_table("quarantine") as batch:
        batch.alter_column("record_key", existing_type=sa.Text, nullable=False)
        batch.alter_column("last_seen_at", existing_type=TS, nullable=False)
    op.create_index(
        OPEN_INDEX,
        "quarantine",
        ["entity", "record_key"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index(OPEN_INDEX, table_name="quarantine")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("resolved_at")
        batch.drop_column("times_seen")
        batch.drop_column("last_seen_at")
        batch.drop_column("record_key")
        batch.alter_column(
            "first_seen_at", new_column_name="created_at", existing_type=TS, existing_nullable=False
        )


def _fingerprint_keyless(conn: sa.Connection) -> None:
    """Give rows without a source key the key ``record_quarantine`` gives them now."""
    select = sa.text(
        "SELECT id, CAST(payload AS TEXT) FROM quarantine"
        " WHERE record_key IS NULL AND id > :after ORDER BY id LIMIT :n"
    )
    update = sa.text("UPDATE quarantine SET record_key = :key WHERE id = :id")
    after = 0
    while rows := conn.execute(select, {"after": after, "n": BATCH}).all():
        conn.execute(update, [{"id": id_, "key": _payload_key(text)} for id_, text in rows])
        after = rows[-1][0]


def _payload_key(text: str) -> str:
    # record_quarantine hashes orjson's compact text; older rows were written by json.dumps
    # (with spaces), so re-serialise. A copy of the rule, not an import: a migration must
    # not change when the application code does.
    try:
        data = orjson.dumps(json.loads(text))
    except (ValueError, TypeError, orjson.JSONEncodeError):
        data = text.encode()  # integers beyond 64 bits: keep the stored text
    return "payload:" + hashlib.md5(data, usedforsecurity=False).hexdigest()
