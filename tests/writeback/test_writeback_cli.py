"""``invsync writeback`` and ``invsync db upgrade --app``: the ``supabase-to-finale`` flow run
for real (Prefect, the sandbox on loopback, PostgreSQL), its ``--json`` summary and exit codes.

``run_cli`` runs the app in-process (as ``tests/e2e/test_pipeline_cli.py`` does); one test
runs the installed console script as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from writeback_support import World, make_world

# Imported at collection (see tests/e2e/test_pipeline_cli.py): Prefect's console handler
# keeps the sys.stderr of the moment the flows are first imported.
import flows.supabase_to_finale  # noqa: F401
from invsync.cli import app
from writeback.run import run_lock

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INVSYNC = str(Path(sys.executable).with_name("invsync"))
OWN_PREFIXES = ("FINALE_", "WAREHOUSE_", "SYNC_", "QUARANTINE_", "SUPABASE_", "ALERT_")
SUMMARY_KEYS = {
    "flow",
    "run_id",
    "status",
    "started_at",
    "finished_at",
    "counts",
    "requests",
    "error",
}
OUTCOMES = {
    "created",
    "updated",
    "locked",
    "cancelled",
    "refreshed",
    "unchanged",
    "failed",
    "conflict",
}


def run_cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``invsync`` app in-process; return (exit code, stdout, stderr)."""
    capfd.readouterr()
    try:
        code = app(list(args), standalone_mode=False, prog_name="invsync")
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    return int(code or 0), out, err


@pytest.fixture
def settings_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., dict[str, str]]]:
    """Factory: point the environment at a world (the app database is the warehouse's)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith(OWN_PREFIXES):
            monkeypatch.delenv(name)

    def apply(world: World | None, url: str, **extra: str) -> dict[str, str]:
        values = {"WAREHOUSE_URL": url, "SUPABASE_DB_URL": url}
        if world is not None:
            values.update(world.handle.env, FINALE_RATE_LIMIT_PER_MINUTE="100000")
        values.update(extra)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return values

    yield apply


def _flow_run(run_id: str) -> Any:
    with get_client(sync_client=True) as client:
        found = client.read_flow_run(uuid.UUID(run_id))
        return found, client.read_flow(found.flow_id).name


def _artifacts(run_id: str) -> list[Any]:
    artifact_filter = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
        key=ArtifactFilterKey(any_=["writeback-requests"]),
    )
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=artifact_filter)


def test_writeback_json_runs_the_flow_and_prints_every_outcome(
    world: World,
    settings_env: Callable[..., dict[str, str]],
    prefect_harness: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings_env(world, world.url)
    ((sku, url),) = world.products(1)
    drafted = world.add_request(world.vendor(), [(sku, 6, "1.5")])
    committed = world.add_request(world.vendor(), [(sku, 2, 1)], status="ready_to_commit")

    code, out, err = run_cli(capfd, "writeback", "--json")

    assert code == 0, out + err
    printed = json.loads(out)
    assert set(printed) == SUMMARY_KEYS and set(printed["counts"]) == OUTCOMES
    assert printed["flow"] == "supabase-to-finale" and printed["status"] == "succeeded"
    assert printed["counts"] == {**dict.fromkeys(OUTCOMES, 0), "created": 1, "locked": 1}
    by_id = {r["request_id"]: r for r in printed["requests"]}
    assert by_id[drafted] == {
        "request_id": drafted,
        "outcome": "created",
        "finale_order_id": f"APP-{drafted}",
        "finale_status": "ORDER_CREATED",
        "sync_status": "synced",
        "error": None,
    }
    assert by_id[committed]["outcome"] == "locked"
    assert by_id[committed]["finale_status"] == "ORDER_LOCKED"
    # What the summary says is what landed, in the app database and in Finale.
    for request_id, status in ((drafted, "ORDER_CREATED"), (committed, "ORDER_LOCKED")):
        stored = world.request(request_id)
        assert stored["finale_status"] == status and stored["sync_status"] == "synced"
        assert world.finale_order(f"APP-{request_id}")["statusId"] == status
    assert world.finale_order(f"APP-{drafted}")["orderItemList"][0]["productUrl"] == url
    # It ran as the supabase-to-finale flow, whose run id the summary carries.
    flow_run, flow_name = _flow_run(printed["run_id"])
    assert flow_name == "supabase-to-finale" and flow_run.state.is_completed()
    [artifact] = _artifacts(printed["run_id"])
    assert {(r["request_id"], r["outcome"]) for r in json.loads(artifact.data)} == {
        (drafted, "created"),
        (committed, "locked"),
    }

    # Nothing new: a second run processes the open orders and changes nothing.
    code, out, _ = run_cli(capfd, "writeback", "--json")
    assert code == 0
    again = json.loads(out)
    assert again["counts"]["unchanged"] == 2 and sum(again["counts"].values()) == 2


def test_writeback_exits_1_when_finale_refuses_a_request_and_0_once_it_waits(
    world: World,
    settings_env: Callable[..., dict[str, str]],
    prefect_harness: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings_env(world, world.url)
    ((sku, _),) = world.products(1)
    refused = world.add_request(world.vendor(enabled=False), [(sku, 1, 1)])
    fine = world.add_request(world.vendor(), [(sku, 1, 1)])

    code, out, err = run_cli(capfd, "writeback", "--json")

    assert code == 1, out + err
    printed = json.loads(out)
    assert printed["status"] == "failed"
    assert printed["counts"]["failed"] == 1 and printed["counts"]["created"] == 1
    assert printed["error"] == f"1 request(s) failed: {refused}"
    line = next(r for r in printed["requests"] if r["request_id"] == refused)
    assert "Supplier '777001' is inactive" in line["error"]
    assert world.request(refused)["sync_error"] == line["error"]
    assert world.request(fine)["finale_order_id"] == f"APP-{fine}"
    flow_run, _ = _flow_run(printed["run_id"])
    assert flow_run.state.is_failed()

    # The refused request is not retried until it changes: the next run succeeds.
    code, out, err = run_cli(capfd, "writeback")
    assert code == 0, out + err
    assert "write-back succeeded" in out
    assert f"request {refused}" not in out


def test_writeback_exits_3_when_another_run_holds_the_lock(
    world: World,
    settings_env: Callable[..., dict[str, str]],
    prefect_harness: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings_env(world, world.url)
    ((sku, _),) = world.products(1)
    request_id = world.add_request(world.vendor(), [(sku, 1, 1)])

    with run_lock(world.app):
        code, out, err = run_cli(capfd, "writeback", "--json")

    assert code == 3, out + err
    printed = json.loads(out)
    assert printed["status"] == "skipped" and printed["requests"] == []
    assert "another write-back run" in printed["error"]
    assert world.request(request_id)["finale_order_id"] is None


@pytest.mark.parametrize(
    ("variable", "value", "code", "fragment"),
    [
        pytest.param("SUPABASE_DB_URL", None, 2, "SUPABASE_DB_URL is not set", id="missing"),
        pytest.param(
            "SUPABASE_DB_URL", "sqlite:///app.db", 2, "must be a PostgreSQL URL", id="not-pg"
        ),
        pytest.param(
            "SUPABASE_DB_URL",
            "postgresql://app:Hush-5ecret-77@127.0.0.1:1/app",
            1,
            "cannot use the app database at SUPABASE_DB_URL=postgresql+psycopg://app:***@",
            id="unreachable",
        ),
    ],
)
def test_writeback_refuses_bad_app_settings_naming_them_without_the_password(
    pg_url: str,
    settings_env: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    variable: str,
    value: str | None,
    code: int,
    fragment: str,
) -> None:
    settings_env(None, pg_url, FINALE_ACCOUNT="acme", FINALE_API_KEY="k", FINALE_API_SECRET="s")
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)

    got, out, err = run_cli(capfd, "writeback")

    assert got == code, out + err
    assert fragment in err
    assert "Hush-5ecret-77" not in out + err
    assert "Traceback" not in out + err


def test_writeback_stops_when_the_app_tables_are_missing(
    world: World,
    pg_url: str,
    pg_admin_engine: sa.Engine,
    settings_env: Callable[..., dict[str, str]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    empty = f"invsync_test_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{empty}"'))
    try:
        app_url = pg_admin_engine.url.set(database=empty).render_as_string(hide_password=False)
        settings_env(world, world.url, SUPABASE_DB_URL=app_url)
        code, out, err = run_cli(capfd, "writeback")
    finally:
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)'))
    assert code == 1, out + err
    assert "are missing: run `invsync db upgrade --app` first" in err


def test_db_upgrade_app_creates_the_app_tables_apart_from_the_warehouse(
    pg_url: str,
    settings_env: Callable[..., dict[str, str]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings_env(None, pg_url)

    code, out, err = run_cli(capfd, "db", "upgrade", "--app")

    assert code == 0, out + err
    assert out.strip() == "app tables at revision app_0001_po_requests"
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
        assert names == {
            "purchase_order_requests",
            "purchase_order_request_lines",
            "purchase_order_request_conflicts",
            "invsync_app_alembic_version",
        }, "the warehouse was not touched"
        code, out, err = run_cli(capfd, "db", "upgrade")  # the warehouse, in the same database
        assert code == 0, out + err
        with engine.connect() as conn:
            versions = {
                table: conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalar_one()
                # The warehouse's in its own schema (WAREHOUSE_SCHEMA), the app's in public.
                for table in ("inventory.alembic_version", "invsync_app_alembic_version")
            }
            # The app's updated_at follows the app's edits, lines included.
            request_id = conn.execute(
                sa.text(
                    "INSERT INTO purchase_order_requests (vendor_party_id) VALUES ('1') "
                    "RETURNING id"
                )
            ).scalar_one()
            conn.commit()
            first = _updated_at(conn, request_id)
            conn.execute(
                sa.text("UPDATE purchase_order_requests SET sync_status = 'synced' WHERE id = :i"),
                {"i": request_id},
            )
            conn.commit()
            assert _updated_at(conn, request_id) == first, "write-back columns do not move it"
            conn.execute(
                sa.text(
                    "INSERT INTO purchase_order_request_lines "
                    "(request_id, line_no, sku, quantity) VALUES (:i, 1, 'A', 1)"
                ),
                {"i": request_id},
            )
            conn.commit()
            assert _updated_at(conn, request_id) > first
    finally:
        engine.dispose()
    assert versions["invsync_app_alembic_version"] == "app_0001_po_requests"
    assert versions["inventory.alembic_version"].startswith("000")
    code, out, _ = run_cli(capfd, "db", "upgrade", "--app")  # idempotent
    assert code == 0 and "app_0001_po_requests" in out


def _updated_at(conn: sa.Connection, request_id: int) -> Any:
    return conn.execute(
        sa.text("SELECT updated_at FROM purchase_order_requests WHERE id = :i"), {"i": request_id}
    ).scalar_one()


def test_the_console_script_writes_back_once_through_a_lost_answer_and_prints_json(
    make_sandbox: Callable[..., Any],
    pg_url: str,
    prefect_harness: None,
    tmp_path: Path,
) -> None:
    from prefect.settings import PREFECT_API_URL

    world = make_world(make_sandbox(), pg_url)
    try:
        ((sku, _),) = world.products(1)
        request_id = world.add_request(world.vendor(), [(sku, 3, 1)], status="ready_to_commit")
        world.control.lose_answers(1, "timeout")  # Finale stores the create, never answers
        env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
        env.update(
            world.handle.env,
            WAREHOUSE_URL=pg_url,
            SUPABASE_DB_URL=pg_url,
            FINALE_RATE_LIMIT_PER_MINUTE="100000",
            FINALE_TIMEOUT_SECONDS="1",
            PREFECT_API_URL=str(PREFECT_API_URL.value()),
            PREFECT_HOME=str(tmp_path / "prefect-home"),
        )
        done = subprocess.run(
            [INVSYNC, "writeback", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        printed = json.loads(done.stdout)
        assert printed["counts"]["locked"] == 1
        assert world.control.stats()["faults"]["lost_answer_timeout"] == 1
        # Exactly one order, locked, although the create's answer never came.
        assert world.finale_order(f"APP-{request_id}")["statusId"] == "ORDER_LOCKED"
        assert world.request(request_id)["finale_status"] == "ORDER_LOCKED"
    finally:
        world.control.close()
        world.engine.dispose()
        world.app.dispose()
