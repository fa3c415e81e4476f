"""``supabase-sync`` end to end: the app's requests land in the warehouse like Finale's data.

The app database is a real PostgreSQL migrated with the app tables (``invsync db upgrade
--app``'s migrations); it is read by either path (direct PostgreSQL, or the REST API through
the PostgREST double on loopback), in real Prefect flow runs, into a SQLite or PostgreSQL
warehouse. Every request read is loaded, unchanged or quarantined, and the counts say so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from postgrest_double import DoubleConfig, start_in_thread

from flows.finale_sync import supabase_sync
from invsync.settings import ConfigError
from pipeline.entities import ENTITIES
from pipeline.status import all_statuses
from schemas.tables import app_purchase_order_requests, quarantine, sync_runs
from warehouse.db import create_warehouse_engine
from writeback.migrate import create_app_engine, upgrade_app

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("prefect_harness")]

SERVICE_KEY = "test-service-role-key-for-the-double"


@pytest.fixture
def app_url(pg_admin_engine: sa.Engine) -> Iterator[str]:
    """A database of its own for the app, migrated with the app tables."""
    name = f"invsync_app_{uuid.uuid4().hex[:10]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_admin_engine.url.set(database=name).render_as_string(hide_password=False)
    upgrade_app(url)
    try:
        yield url
    finally:
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["postgres", "rest"])
def app_path(
    request: pytest.FixtureRequest, app_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Point the settings at the app database by one path; yields the path's name."""
    for name in ("SUPABASE_DB_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPABASE_PAGE_SIZE", "2")  # several pages from three rows
    if request.param == "postgres":
        monkeypatch.setenv("SUPABASE_DB_URL", app_url)
        yield "postgres"
        return
    libpq = app_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with start_in_thread(DoubleConfig(db_url=libpq, api_key=SERVICE_KEY)) as api:
        monkeypatch.setenv("SUPABASE_URL", api.base_url)
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
        yield "rest"


def _app(app_url: str, sql: str, **params: Any) -> None:
    engine = create_app_engine(app_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _runs(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sync_runs).where(sync_runs.c.entity == "purchase_order_requests")
        )
        return [dict(row._mapping) for row in rows]


def test_app_requests_land_in_the_warehouse_and_bad_ones_are_quarantined(
    app_path: str, app_url: str, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    _app(
        app_url,
        "INSERT INTO purchase_order_requests (vendor_party_id, destination_facility_id, status)"
        " VALUES ('100010', '10000', 'draft'), ('100011', NULL, 'ready_to_commit'),"
        " ('   ', '10000', 'draft')",
    )

    summary = supabase_sync()

    record = summary.entities["purchase_order_requests"]
    assert (record.extracted, record.inserted, record.quarantined) == (3, 2, 1)
    engine = create_warehouse_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            loaded = conn.execute(
                sa.select(
                    app_purchase_order_requests.c.request_id,
                    app_purchase_order_requests.c.vendor_party_id,
                    app_purchase_order_requests.c.destination_facility_id,
                    app_purchase_order_requests.c.status,
                ).order_by(app_purchase_order_requests.c.request_id)
            ).all()
            held = conn.execute(
                sa.select(quarantine.c.source_key, quarantine.c.reasons).where(
                    quarantine.c.entity == "purchase_order_requests"
                )
            ).all()
        assert [tuple(row) for row in loaded] == [
            ("1", "100010", "10000", "draft"),
            ("2", "100011", None, "ready_to_commit"),
        ]
        assert [row.source_key for row in held] == ["3"]
        assert "vendor_party_id must not be blank" in held[0].reasons
        # Once it has synced, the app entity is in the status of every entity, after Finale's.
        with engine.connect() as conn:
            listed = [row["entity"] for row in all_statuses(conn)]
        assert listed == [*ENTITIES, "purchase_order_requests"]

        # An edit moves the request's updated_at: the next run reads it again and updates it;
        # the request left as it was reads as unchanged (the overlap re-reads it).
        _app(app_url, "UPDATE purchase_order_requests SET status = 'cancelled' WHERE id = 1")
        again = supabase_sync().entities["purchase_order_requests"]

        assert again.updated == 1 and again.inserted == 0
        assert again.extracted == again.updated + again.unchanged + again.quarantined
        with engine.connect() as conn:
            status = conn.execute(
                sa.select(app_purchase_order_requests.c.status).where(
                    app_purchase_order_requests.c.request_id == "1"
                )
            ).scalar_one()
        assert status == "cancelled"
        # The open quarantine entry stays one entry; each run counts the bad record it read.
        assert [(run["status"], run["quarantined"]) for run in _runs(engine)] == [
            ("succeeded", 1),
            ("succeeded", 1),
        ]
    finally:
        engine.dispose()


def test_a_run_without_supabase_settings_names_the_variable(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SUPABASE_DB_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAREHOUSE_URL", sqlite_url)

    with pytest.raises(ConfigError, match=r"set SUPABASE_DB_URL .* or SUPABASE_URL and"):
        supabase_sync()
    engine = create_warehouse_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            listed = [row["entity"] for row in all_statuses(conn)]
        assert listed == list(ENTITIES), "an app entity that never synced is not listed"
    finally:
        engine.dispose()
