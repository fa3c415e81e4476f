"""A delivery process killed with SIGKILL in the middle of a POST loses nothing and, as a
receiver that de-duplicates by Idempotency-Key sees it, delivers nothing twice.

The delivery runs as ``python -m events deliver`` (the engine without Prefect, as cron
would run it) against a loopback receiver that holds its answer to the fourth request;
the test kills the process while that request is in flight, then runs it again until
nothing is pending. SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
from event_receivers import Receiver, add_events, deliveries, subscribers_file, wh, wh_url

from events.delivery import fan_out
from events.subscribers import load_subscribers

__all__ = ["wh", "wh_url"]  # fixtures

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "whsec_kill_test_5e3cret"


def _run(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "events", "deliver"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_delivery_loses_nothing_and_duplicates_nothing(
    wh: sa.Engine, wh_url: str, tmp_path: Path
) -> None:
    with Receiver("app", SECRET) as r:
        config = subscribers_file(
            tmp_path / "events.toml",
            r.url,
            timeout_seconds=1,
            backoff_base_seconds=0.01,
            backoff_max_seconds=0.01,
        )
        fan_out(wh, load_subscribers(config))  # the subscriber starts here
        keys = ["A", "B", "A", "B", "A", "C", "B", "A"]
        ids = add_events(wh, keys)
        env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT),
            "WAREHOUSE_URL": wh_url,
            "EVENT_SUBSCRIBERS_FILE": str(config),
            "APP_HOOK_SECRET": SECRET,
        }
        r.hold, r.hold_after = threading.Event(), 3

        first = _run(env, tmp_path)
        try:
            for _ in range(3000):  # until the fourth request is in flight
                if len(r.requests) >= 4 or first.poll() is not None:
                    break
                threading.Event().wait(0.01)
            assert len(r.requests) == 4, first.communicate()
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
        r.hold_after = 1000  # answer at once from now on
        r.hold.set()
        in_flight = r.requests[3].key
        assert deliveries(wh, "app")[in_flight]["status"] == "pending"

        for _ in range(10):
            again = _run(env, tmp_path)
            out, err = again.communicate(timeout=60)
            assert again.returncode == 0, out + err
            if '"pending": 0' in out:
                break
            threading.Event().wait(0.5)  # the killed attempt is due after its timeout

        assert {d["status"] for d in deliveries(wh, "app").values()} == {"delivered"}
        processed = r.processed()
        assert sorted(x.key for x in processed) == sorted(ids)  # each once, none lost
        sends = defaultdict(int)
        for x in r.requests:
            sends[x.key] += 1
        assert sends[in_flight] == 2 and sum(sends.values()) == len(ids) + 1
        assert all(x.signature_ok for x in r.requests)
        by_key: dict[str, list[int]] = defaultdict(list)
        for x in processed:
            by_key[x.event["key"]].append(x.event["data"]["n"])
        assert all(numbers == sorted(numbers) for numbers in by_key.values()), by_key
