"""``invsync events list | replay | deliver``, through the real CLI app (in process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from event_receivers import Receiver, add_events, deliveries, subscribers_file
from typer.testing import CliRunner

from invsync.cli import app
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade

SECRET = "whsec_cli_test_1a2b3c"
runner = CliRunner()


@pytest.fixture
def setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[sa.Engine, Receiver, Path]]:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    upgrade(url)
    engine = create_warehouse_engine(url)
    with Receiver("app", SECRET) as r:
        config = subscribers_file(tmp_path / "events.toml", r.url, max_attempts=1)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("WAREHOUSE_URL", url)
        monkeypatch.setenv("EVENT_SUBSCRIBERS_FILE", str(config))
        monkeypatch.setenv("APP_HOOK_SECRET", SECRET)
        yield engine, r, config
    engine.dispose()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["events", *args])
    return result.exit_code, result.output


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.slow
def test_deliver_list_and_replay(setup: tuple[sa.Engine, Receiver, Path]) -> None:
    engine, r, _ = setup
    assert _invoke("deliver")[0] == 0  # the subscriber starts at the end of the outbox
    ids = add_events(engine, ["PO-1", "PO-2"])
    r.fail_next, r.fail_status = 1, 400  # PO-1 is refused: dead at once

    code, out = _invoke("deliver")
    assert code == 1, out
    assert "delivered=1" in out and "dead=1" in out
    assert r.url not in out and SECRET not in out

    code, out = _invoke("list", "--status", "dead", "--json")
    assert code == 0, out
    (dead,) = json.loads(out)
    assert (dead["event_id"], dead["subscriber"], dead["last_status_code"]) == (ids[0], "app", 400)
    code, out = _invoke("list", "--type", "purchase_order.*", "--subscriber", "app")
    assert code == 0 and ids[0] in out and ids[1] in out and "HTTP 400" in out

    code, out = _invoke("replay", "--subscriber", "app")
    assert code == 0, out
    assert f"queued {ids[0]}" in out and "(was dead)" in out and "1 deliveries queued" in out
    code, out = _invoke("deliver", "--json")
    assert code == 0, out
    assert json.loads(out)["delivered"] == 1
    assert [x.key for x in r.processed()] == [ids[1], ids[0]]

    code, out = _invoke("replay", "--id", ids[1])
    assert code == 0 and "(was delivered)" in out
    assert deliveries(engine, "app")[ids[1]]["status"] == "pending"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("replay",), "say what to replay", id="replay-nothing"),
        pytest.param(("replay", "--since", "yesterday"), "--since 'yesterday' is not", id="since"),
        pytest.param(("replay", "--subscriber", "nope"), "'nope' is not an enabled", id="who"),
        pytest.param(("replay", "--id", "no-such-event"), "no event no-such-event", id="id"),
        pytest.param(("list", "--status", "lost"), "--status 'lost' is not a state", id="status"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(
    setup: tuple[sa.Engine, Receiver, Path], args: tuple[str, ...], message: str
) -> None:
    code, out = _invoke(*args)
    assert code == 2, out
    assert message in out


def test_a_broken_subscribers_file_or_missing_secret_exits_2_before_any_run(
    setup: tuple[sa.Engine, Receiver, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, r, config = setup
    monkeypatch.delenv("APP_HOOK_SECRET")
    code, out = _invoke("deliver")
    assert code == 2 and "APP_HOOK_SECRET is not set" in out and r.url not in out
    config.write_text(config.read_text().replace('events = ["purchase_order.*"]', "events = 3"))
    code, out = _invoke("replay", "--subscriber", "app")
    assert code == 2 and str(config) in out and "'app': events:" in out
