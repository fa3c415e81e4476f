"""The ``invsync`` command line over the real Prefect flows.

``invsync sync --json`` runs as a real subprocess (the console script, the ``finale-sync``
flow and its entity task runs against the session's Prefect server) and must load the
warehouse and print the status JSON; ``invsync status --json`` must then tell the same story. The
quarantine threshold, bad settings and the demo run the same app in-process (``run_cli``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import (
    assert_quarantine_matches,
    assert_warehouse_matches,
    expected_warehouse,
    live_count,
    quarantine_rows,
    read_source,
)

# Imported at collection, not first inside a test: importing the flows sets up Prefect's
# logging, whose console handler keeps the sys.stderr of that moment for good, and a
# test's captured stream is closed when the test ends.
import flows.finale_sync  # noqa: F401
from invsync.cli import app
from pipeline.entities import ENTITIES
from sandbox.server import SandboxHandle
from schemas import tables
from warehouse.db import create_warehouse_engine

pytestmark = pytest.mark.slow

INVSYNC = str(Path(sys.executable).with_name("invsync"))
STATUS_KEYS = {"integration", "entity", "status", "last_sync", "metrics", "health_score"}
METRIC_KEYS = {"records_synced", "sync_duration_ms", "errors", "next_sync"}
DEMO_SETS = (
    "FINALE_BASE_URL",
    "FINALE_ACCOUNT",
    "FINALE_API_KEY",
    "FINALE_API_SECRET",
    "WAREHOUSE_URL",
    "QUARANTINE_FAIL_RATIO",
    "PREFECT_LOGGING_LEVEL",
)


def invsync(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed console script."""
    return subprocess.run(
        [INVSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240
    )


def run_cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``invsync`` app in-process; return (exit code, stdout, stderr).

    Not typer's ``CliRunner``: it swaps ``sys.stderr`` for a stream it closes afterwards,
    and Prefect's log handlers, set up during the first flow run, would keep writing to it.
    """
    capfd.readouterr()
    try:
        code = app(list(args), standalone_mode=False, prog_name="invsync")
    except SystemExit as exc:  # ``invsync demo`` exits with sys.exit
        code = exc.code
    out, err = capfd.readouterr()
    return int(code or 0), out, err


def latest_runs(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    """The newest ``sync_runs`` row of each entity."""
    runs = tables.sync_runs
    query = sa.select(runs).order_by(runs.c.started_at, runs.c.id)
    return {r["entity"]: dict(r) for r in conn.execute(query).mappings()}


def test_cli_sync_json_loads_the_warehouse_and_prints_its_status(
    sandbox: SandboxHandle,
    sqlite_url: str,
    cli_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    env = cli_env(sandbox, sqlite_url)

    synced = invsync(["sync", "--json"], env, tmp_path)

    assert synced.returncode == 0, synced.stderr[-3000:]
    printed = json.loads(synced.stdout)
    source = read_source(sandbox)
    expected = expected_warehouse(source)
    engine = create_warehouse_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert_warehouse_matches(conn, expected)
            runs = latest_runs(conn)
            run_id = runs["products"]["run_id"]
            assert_quarantine_matches(conn, run_id, expected, source, ENTITIES)
    finally:
        engine.dispose()
    assert {r["run_id"] for r in runs.values()} == {run_id}, "one flow run synced everything"
    assert all(r["flow_run_id"] for r in runs.values()), "the entity runs ran as Prefect flows"

    assert [entry["entity"] for entry in printed] == list(ENTITIES)
    for entry in printed:
        run = runs[entry["entity"]]
        assert set(entry) >= STATUS_KEYS and set(entry["metrics"]) == METRIC_KEYS
        assert entry["integration"] == "finale_inventory"
        assert run["status"] == "succeeded", (entry["entity"], run["error"])
        finished = datetime.fromisoformat(entry["last_sync"])
        assert finished == run["finished_at"]
        metrics = entry["metrics"]
        assert metrics["records_synced"] == run["inserted"] + run["updated"] > 0
        assert metrics["errors"] == run["quarantined"]
        duration = (run["finished_at"] - run["started_at"]) / timedelta(milliseconds=1)
        assert abs(metrics["sync_duration_ms"] - duration) <= 1
        interval = ENTITIES[entry["entity"]].expected_interval
        assert datetime.fromisoformat(metrics["next_sync"]) == finished + interval
        penalty = min(20.0, 400.0 * run["quarantined"] / run["extracted"])
        assert entry["health_score"] == round(100 - penalty)
        healthy = entry["health_score"] >= 80 and not entry["failed_checks"]
        assert entry["status"] == ("operational" if healthy else "degraded")

    status = invsync(["status", "--json"], env, tmp_path)

    assert status.returncode == 0, status.stderr[-3000:]
    assert json.loads(status.stdout) == printed


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        pytest.param("FINALE_TIMEZONE", "Mars/X", "FINALE_TIMEZONE", id="unknown-time-zone"),
        pytest.param("WAREHOUSE_URL", "mysql://u@db/x", "WAREHOUSE_URL", id="unsupported-db"),
        pytest.param("QUARANTINE_FAIL_RATIO", "2", "QUARANTINE_FAIL_RATIO", id="ratio-above-1"),
        pytest.param("SYNC_CHUNK_SIZE", "0", "SYNC_CHUNK_SIZE", id="empty-chunks"),
        pytest.param("FINALE_API_SECRET", None, "FINALE_API_SECRET", id="no-credentials"),
        pytest.param("FINALE_ACCOUNT", None, "FINALE_ACCOUNT", id="no-account"),
    ],
)
def test_cli_refuses_a_bad_setting_naming_the_variable(
    variable: str,
    value: str | None,
    named: str,
    sandbox: SandboxHandle,
    tmp_path: Path,
    cli_settings: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    database = tmp_path / "warehouse.db"
    cli_settings(sandbox, f"sqlite:///{database}")
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)

    code, out, err = run_cli(capfd, "sync", "--mode", "full")

    assert code == 2, out + err
    assert named in err
    assert "Traceback" not in out + err
    assert not database.exists(), "nothing may touch the warehouse before settings are valid"


def test_cli_fails_a_run_whose_quarantine_share_passes_the_threshold(
    sandbox: SandboxHandle,
    warehouse_url: str,
    cli_settings: Callable[..., None],
    prefect_harness: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    cli_settings(sandbox, warehouse_url, QUARANTINE_FAIL_RATIO="0.0001")

    code, out, err = run_cli(capfd, "sync", "--entities", "products", "--mode", "full")

    assert code == 1, out + err
    assert "QUARANTINE_FAIL_RATIO" in err
    source = read_source(sandbox)
    expected = expected_warehouse(source)
    engine = create_warehouse_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            runs = latest_runs(conn)
            products = runs["products"]
            # The good rows are loaded all the same; the run is marked failed.
            assert live_count(conn, tables.products) == len(expected.rows["products"])
            assert_quarantine_matches(conn, products["run_id"], expected, source, ["products"])
            assert len(quarantine_rows(conn)) == len(expected.quarantined["products"])
    finally:
        engine.dispose()
    assert set(runs) == {"products"}
    assert products["status"] == "failed"
    assert "QUARANTINE_FAIL_RATIO of 0.0001" in products["error"]
    share = len(expected.quarantined["products"]) / expected.extracted["products"]
    assert f"({share:.1%}) failed validation" in products["error"]
    assert products["extracted"] == expected.extracted["products"]


def test_cli_demo_syncs_changes_and_prints_them(
    tmp_path: Path,
    cli_settings: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The demo, an edge like the CLI, writes these into os.environ; have monkeypatch
    # record them untouched first, so that they are put back after the test.
    for name in DEMO_SETS:
        original = os.environ.get(name)
        monkeypatch.setenv(name, original or "")
        if original is None:
            monkeypatch.delenv(name)
    database = tmp_path / "demo.db"

    code, out, err = run_cli(
        capfd, "demo", "--products", "300", "--warehouse-url", f"sqlite:///{database}"
    )

    assert code == 0, out + err
    engine = create_warehouse_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            runs = [dict(r) for r in conn.execute(sa.select(tables.sync_runs)).mappings()]
            products = live_count(conn, tables.products)
    finally:
        engine.dispose()
    by_run: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        by_run.setdefault(run["run_id"], {})[run["entity"]] = run
    assert len(by_run) == 2 and all(set(r) == set(ENTITIES) for r in by_run.values())
    assert {run["status"] for run in runs} == {"succeeded"}
    full, incremental = sorted(by_run.values(), key=lambda r: r["products"]["started_at"])
    assert products == full["products"]["inserted"] == 300 - full["products"]["quarantined"]
    assert incremental["products"]["updated"] > 0
    assert incremental["purchase_orders"]["extracted"] > 0
    assert incremental["stock"]["updated"] > 0
    assert "FAILED" not in out
    rewritten = re.search(r"products: (\d+) rows rewritten", out)
    assert rewritten, out
    assert int(rewritten.group(1)) == (
        incremental["products"]["inserted"] + incremental["products"]["updated"]
    )
    assert "25 products edited, 5 deactivated" in out
