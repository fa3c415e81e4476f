"""The warehouse layer: schema migrations, engines, loading and sync bookkeeping.

- ``warehouse.db``: ``create_warehouse_engine`` (PostgreSQL via psycopg 3, or SQLite with WAL
  and real ``BEGIN IMMEDIATE`` transactions).
- ``warehouse.migrate``: ``upgrade`` / ``current_revision`` over the packaged Alembic scripts.
- ``warehouse.canonical``: the canonical text of a row and its ``content_hash``.
- ``warehouse.load``: ``load_chunk`` (changed-rows-only upsert), deletions, checksums.
- ``warehouse.stock``: stock levels aggregated across chunks in SQL.
- ``warehouse.state``: watermarks, the run log, quarantine.

Table definitions live in ``schemas.tables``. Nothing in this package commits on the
caller's behalf (``migrate`` aside): rows, watermark and run counts share one transaction.
"""
