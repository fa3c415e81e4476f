"""The CLI fails fast, short and true: real subprocesses, exit codes, output size and time.

Bad arguments exit 2 before Prefect starts; a rejected key, an unreachable Finale or an
unreachable warehouse stop the run once, within seconds, with one line naming the setting to
check (``--verbose`` adds the traceback); a run skipped because another holds the entity's
lock exits 3. Secrets never appear; Prefect's telemetry complaints never appear.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import child_env

from invsync.settings import ConfigError, load_settings
from sandbox.server import SandboxHandle
from warehouse.db import create_warehouse_engine
from warehouse.locks import entity_lock
from warehouse.migrate import upgrade

pytestmark = pytest.mark.slow

INVSYNC = str(Path(sys.executable).with_name("invsync"))


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, float]:
    """Run the console script; (exit code, stdout + stderr, seconds)."""
    started = time.monotonic()
    done = subprocess.run(
        [INVSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def _assert_short(output: str, most: int = 6) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) <= most, output
    assert "Traceback" not in output, output
    assert "telemetry" not in output.lower(), output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(["sync", "--mode", "fast"], "--mode 'fast'", id="unknown-mode"),
        pytest.param(
            ["sync", "--since", "2025-02-01", "--until", "2025-01-01"], "--until", id="until-first"
        ),
        pytest.param(
            ["backfill", "--since", "2025-02-01", "--until", "2025-02-01"],
            "--until",
            id="backfill-empty-range",
        ),
        pytest.param(["sync", "--entities", " , "], "--entities is empty", id="no-entities"),
        pytest.param(["sync", "--entities", "vendorz"], "unknown entity vendorz", id="unknown"),
        pytest.param(["sync", "--since", "yesterday"], "--since 'yesterday'", id="bad-date"),
    ],
)
def test_bad_arguments_exit_2_at_once_before_prefect_starts(
    args: list[str], named: str, tmp_path: Path
) -> None:
    database = tmp_path / "warehouse.db"
    env = child_env(None, f"sqlite:///{database}", FINALE_ACCOUNT="acme")

    code, output, seconds = run(args, env, tmp_path)

    assert code == 2, output
    assert named in output
    assert "temporary server" not in output
    _assert_short(output, most=2)
    assert seconds < 15, seconds
    assert not database.exists(), "nothing may touch the warehouse on bad arguments"


def test_a_rejected_key_stops_the_whole_run_at_once(sandbox: SandboxHandle, tmp_path: Path) -> None:
    env = child_env(sandbox, f"sqlite:///{tmp_path / 'w.db'}", FINALE_API_SECRET="not-it")

    code, output, seconds = run(["sync"], env, tmp_path)

    assert code == 1, output
    assert seconds < 10, seconds
    assert output.count("Finale rejected the credentials") == 1, output
    assert "FINALE_API_KEY" in output and "FINALE_API_SECRET" in output
    assert "not-it" not in output
    _assert_short(output, most=2)


def test_an_unreachable_finale_fails_within_30_seconds_naming_the_url_setting(
    tmp_path: Path,
) -> None:
    env = child_env(
        None,
        f"sqlite:///{tmp_path / 'w.db'}",
        FINALE_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
        FINALE_ACCOUNT="acme",
        FINALE_API_KEY="k",
        FINALE_API_SECRET="s",
    )

    code, output, seconds = run(["sync"], env, tmp_path)

    assert code == 1, output
    assert seconds < 30, seconds
    assert "cannot reach Finale" in output and "FINALE_BASE_URL" in output
    _assert_short(output, most=2)


def test_an_unreachable_warehouse_names_warehouse_url_and_verbose_shows_why(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    url = f"postgresql://someone:hunter2@127.0.0.1:{_closed_port()}/nowhere"
    env = child_env(sandbox, url)

    code, output, seconds = run(["sync"], env, tmp_path)

    assert code == 1, output
    assert "WAREHOUSE_URL=postgresql+psycopg://someone:***@127.0.0.1" in output
    assert "hunter2" not in output
    _assert_short(output, most=2)
    assert seconds < 30, seconds

    code, verbose, _ = run(["--verbose", "sync"], env, tmp_path)

    assert code == 1
    assert "Traceback" in verbose and "OperationalError" in verbose
    assert "hunter2" not in verbose


def test_postgres_urls_are_accepted_and_other_schemes_get_an_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for given in ("postgres://u@db.example/app", "postgresql://u@db.example/app"):
        monkeypatch.setenv("WAREHOUSE_URL", given)
        assert load_settings().warehouse_url == "postgresql+psycopg://u@db.example/app"
    monkeypatch.setenv("WAREHOUSE_URL", "mysql://u@db.example/app")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "WAREHOUSE_URL" in str(error.value)
    assert "'mysql' warehouses are not supported" in str(error.value)
    assert "postgresql://user:password@host:5432/db" in str(error.value)


def test_a_postgres_scheme_url_syncs_end_to_end(
    sandbox: SandboxHandle, pg_url: str, tmp_path: Path
) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgres://")
    env = child_env(sandbox, plain)

    code, output, _ = run(["sync", "--entities", "facilities"], env, tmp_path)

    assert code == 0, output
    assert "facilities" in output and "succeeded" in output
    assert "telemetry" not in output.lower(), output
    engine = create_warehouse_engine(pg_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM facilities")).scalar_one()
    finally:
        engine.dispose()
    assert count > 0


def test_a_run_skipped_for_a_busy_lock_exits_3_and_says_so(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    engine = create_warehouse_engine(url)
    env = child_env(sandbox, url, LOCK_WAIT_SECONDS="0")
    try:
        with entity_lock(engine, "facilities"):
            code, output, _ = run(["sync", "--entities", "facilities"], env, tmp_path)
    finally:
        engine.dispose()

    assert code == 3, output
    assert "facilities" in output and "skipped" in output
    assert "another run" in output


def test_version_and_help_say_what_options_take(tmp_path: Path) -> None:
    env = child_env(None, f"sqlite:///{tmp_path / 'w.db'}", COLUMNS="300")  # no wrapping

    code, output, _ = run(["--version"], env, tmp_path)
    assert code == 0 and output.startswith("invsync ")

    code, output, _ = run(["sync", "--help"], env, tmp_path)
    flat = " ".join(output.split())
    assert code == 0
    assert "facilities, vendors, products, stock, purchase_orders" in flat
    assert "incremental, full" in flat


def test_killing_the_cli_never_leaves_its_prefect_server_running(
    make_sandbox: Any, tmp_path: Path
) -> None:
    import signal

    import psutil

    sandbox = make_sandbox(products=3000, faults="slow:1.0")  # a run of several seconds
    env = child_env(sandbox, f"sqlite:///{tmp_path / 'w.db'}", SYNC_CHUNK_SIZE="100")
    cli = subprocess.Popen(
        [INVSYNC, "sync", "--mode", "full"], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        servers: list[psutil.Process] = []
        while not servers:
            assert cli.poll() is None, "the sync ended before it could be killed"
            assert time.monotonic() < deadline, "no temporary Prefect server appeared"
            servers = [
                child
                for child in psutil.Process(cli.pid).children(recursive=True)
                if "uvicorn" in " ".join(child.cmdline())
            ]
            time.sleep(0.2)  # polling for the server process; nothing depends on the timing
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    _, alive = psutil.wait_procs(servers, timeout=15)
    assert not alive, f"still running after the CLI was killed: {[p.pid for p in alive]}"
