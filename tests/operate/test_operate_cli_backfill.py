"""`invsync backfill` from a shell (resuming is proven on the flow in the other test file)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread

INVSYNC = Path(sys.executable).with_name("invsync")


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with start_in_thread(SandboxConfig(port=0, products=300, rate_limit_per_minute=0)) as h:
        yield h


def test_cli_backfill_reports_its_windows_and_loads_them(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    db = tmp_path / "wh.db"
    env = {
        **os.environ,
        **sandbox.env,
        "WAREHOUSE_URL": f"sqlite:///{db}",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "FINALE_SHARED_RATE_LIMIT": "",
        "QUARANTINE_FAIL_RATIO": "0.5",
        # The CLI starts its own temporary Prefect server; on a busy 2-core CI machine that
        # can take longer than Prefect's default 20 s.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    args = [str(INVSYNC), "backfill", "--entities", "products,vendors",
            "--since", "2026-05-01", "--until", "2026-07-15"]  # fmt: skip

    first = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "windows (0 already done)" in first.stdout
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        loaded = conn.execute(sa.text("SELECT count(*) FROM products")).scalar_one()
        windows = conn.execute(sa.text("SELECT count(*) FROM backfill_windows")).scalar_one()
        watermarks = conn.execute(sa.text("SELECT count(*) FROM sync_state")).scalar_one()
    engine.dispose()
    assert loaded > 0
    assert windows == 6  # 3 windows of at most 30 days x 2 entities
    assert watermarks == 0  # a backfill never moves (or creates) the incremental watermark
