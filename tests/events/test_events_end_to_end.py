"""From a change in Finale to a signed POST at a subscriber: the real ``finale-sync`` and
``deliver-events`` flows on the session's Prefect server, the sandbox, a SQLite warehouse
and a loopback receiver.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from event_receivers import Receiver, subscribers_file

from flows.deliver_events import deliver_events
from flows.finale_sync import finale_sync
from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread
from schemas.tables import purchase_orders
from warehouse.db import create_warehouse_engine

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

SECRET = "whsec_end_to_end_5q4w3e"


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    anchor = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00")
    handle = start_in_thread(
        SandboxConfig(port=0, products=300, rate_limit_per_minute=0, anchor=anchor)
    )
    yield handle
    handle.stop(wait=False)


def test_a_status_change_in_finale_reaches_the_subscriber_signed_and_once(
    sandbox: SandboxHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with Receiver("app", SECRET) as receiver:
        config = subscribers_file(tmp_path / "events.toml", receiver.url)
        for name, value in {
            **sandbox.env,
            "FINALE_RATE_LIMIT_PER_MINUTE": "100000",
            "QUARANTINE_FAIL_RATIO": "0.5",
            "WAREHOUSE_URL": url,
            "EVENT_SUBSCRIBERS_FILE": str(config),
            "APP_HOOK_SECRET": SECRET,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)

        finale_sync()  # the baseline: runs announced, no order announced
        assert deliver_events()["delivered"] == 0  # the subscriber starts here
        engine = create_warehouse_engine(url)
        with engine.connect() as conn:
            before = dict(
                conn.execute(sa.select(purchase_orders.c.order_id, purchase_orders.c.status)).all()
            )
        with SandboxControl(sandbox.base_url) as control:
            cancelled = {str(k) for k in control.cancel_orders(4)} & set(before)
        assert cancelled

        finale_sync(entities=["purchase_orders"])
        delivered = deliver_events()
        assert deliver_events()["delivered"] == 0  # nothing left, nothing sent twice
        engine.dispose()

    events = [r.event for r in receiver.requests]
    assert all(r.signature_ok for r in receiver.requests)
    assert [r.key for r in receiver.requests] == [e["id"] for e in events]  # Idempotency-Key
    assert delivered["delivered"] == len(events) == len(cancelled)
    assert {e["key"]: e["data"]["previous_status"] for e in events} == {
        k: before[k] for k in cancelled
    }
    assert {(e["type"], e["data"]["status"]) for e in events} == {
        ("purchase_order.status_changed", "ORDER_CANCELLED")
    }
