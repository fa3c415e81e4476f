"""The warehouse layer: schema migrations, engines, loading and sync bookkeeping.

- ``warehouse.db``: ``create_warehouse_engine`` (PostgreSQL via psycopg 3 with sessions in
  UTC and ``search_path`` set to the warehouse's schema, ``WAREHOUSE_SCHEMA``; or SQLite
  with WAL and real ``BEGIN IMMEDIATE`` transactions); refuses Supabase's transaction
  pooler.
- ``warehouse.backends``: what differs per database (staging, bulk fills, the changed-only
  upsert, checksum SQL, locks), one ``WarehouseBackend`` each, chosen by ``backend_for``.
- ``warehouse.migrate``: ``upgrade`` / ``current_revision`` over the packaged Alembic scripts.
- ``warehouse.canonical``: the canonical text of a row and its ``content_hash``.
- ``warehouse.staging``: staging columns and the plain bulk-insert helpers.
- ``warehouse.load``: ``load_chunk`` (changed-rows-only upsert), deletions, checksums.
- ``warehouse.stock``: stock levels aggregated across chunks in SQL (``StockStager``).
- ``warehouse.runs``: the run log (``sync_runs``) and ``RunStatus``.
- ``warehouse.state``: watermarks and quarantine.
- ``warehouse.locks``: one sync per entity at a time.
- ``warehouse.api``: ``install_api`` (``invsync db upgrade --api``): read-only views for the
  app, a reader role and row-level security, served by Supabase's REST API.

Table definitions live in ``schemas.tables``. Nothing in this package commits on the
caller's behalf (``migrate`` aside): rows, watermark and run counts share one transaction.
"""
