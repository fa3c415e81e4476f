"""The ``deliver-events`` flow end to end, on the session's Prefect test server: settings
and secrets loaded at the edge, events delivered, and a run that fails when a delivery died.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from event_receivers import Receiver, add_events, deliveries, subscribers_file

from events.delivery import fan_out
from events.subscribers import load_subscribers
from flows.deliver_events import DeliveriesFailed, deliver_events
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

SECRET = "whsec_flow_test_9x8y7z"


def test_the_flow_delivers_and_fails_the_run_when_a_delivery_dies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    upgrade(url)
    engine = create_warehouse_engine(url)
    with Receiver("app", SECRET) as r:
        config = subscribers_file(tmp_path / "events.toml", r.url, max_attempts=1)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("WAREHOUSE_URL", url)
        monkeypatch.setenv("EVENT_SUBSCRIBERS_FILE", str(config))
        monkeypatch.setenv("APP_HOOK_SECRET", SECRET)

        fan_out(engine, load_subscribers(config))  # the subscriber starts here
        ids = add_events(engine, ["PO-1", "PO-2"])
        result = deliver_events()
        assert result["delivered"] == 2
        assert result["subscribers"]["app"]["delivered"] == 2
        assert [x.key for x in r.processed()] == ids
        assert all(x.signature_ok for x in r.requests)

        (dying,) = add_events(engine, ["PO-3"])
        r.fail_next, r.fail_status = 1, 500
        state = deliver_events(return_state=True)
        assert state.is_failed()
        failure = state.result(raise_on_failure=False)
        assert isinstance(failure, DeliveriesFailed)
        assert failure.counts.dead == 1 and "app: 1 dead" in str(failure)
        assert deliveries(engine, "app")[dying]["status"] == "dead"
        # The next run has nothing new to fail on.
        assert deliver_events()["dead"] == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from event_dead_letters")).scalar() == 1
    engine.dispose()
    assert r.url not in caplog.text and SECRET not in caplog.text
