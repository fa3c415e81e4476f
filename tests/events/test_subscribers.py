"""The subscribers file: what it accepts, errors that name file, subscriber and field (and
never a URL or secret), secrets resolved from the environment or a Prefect Secret block."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.subscribers import (
    DEFAULT_SUBSCRIBERS_FILE,
    SubscriberConfigError,
    load_subscribers,
    resolve_secrets,
)
from invsync.settings import load_settings

URL = "https://hooks.example.com/in/tok_9f8e7d6c5b4a"
GOOD = f"""
[defaults]
timeout_seconds = 5
max_attempts = 4

[[subscribers]]
name = "purchasing-app"
url = "{URL}"
events = ["purchase_order.*", "stock.below_reorder_point"]
secret = "env:PURCHASING_SECRET"

[[subscribers]]
name = "bi"
url = "https://bi.example.com/hook"
events = ["*"]
secret = "block:bi-webhook"
max_attempts = 9

[[subscribers]]
name = "old"
url = "https://old.example.com/hook"
events = ["sync.completed"]
secret = "env:OLD"
enabled = false
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "events.toml"
    path.write_text(text)
    return path


def test_a_valid_file_loads_enabled_subscribers_with_defaults(tmp_path: Path) -> None:
    configs = load_subscribers(_write(tmp_path, GOOD))
    assert [c.name for c in configs] == ["purchasing-app", "bi"]  # "old" is disabled
    app, bi = configs
    assert (app.timeout_seconds, app.max_attempts, bi.max_attempts) == (5.0, 4, 9)
    assert app.breaker_failures == 5  # built-in default
    assert app.wants("purchase_order.created") and app.wants("stock.below_reorder_point")
    assert not app.wants("sync.completed") and bi.wants("sync.completed")
    assert URL not in repr(configs)


def test_secrets_come_from_the_environment_or_a_prefect_block(tmp_path: Path) -> None:
    configs = load_subscribers(_write(tmp_path, GOOD))
    blocks = {"bi-webhook": "block-secret-value"}
    subs = resolve_secrets(
        configs, {"PURCHASING_SECRET": "env-secret-value"}, load_block=blocks.__getitem__
    )
    assert [s.secret.get_secret_value() for s in subs] == ["env-secret-value", "block-secret-value"]
    assert "env-secret-value" not in repr(subs) and URL not in repr(subs)


def test_a_missing_secret_names_the_variable_or_block_to_set(tmp_path: Path) -> None:
    configs = load_subscribers(_write(tmp_path, GOOD))
    with pytest.raises(
        SubscriberConfigError,
        match="'purchasing-app': secret: environment variable PURCHASING_SECRET is not set",
    ):
        resolve_secrets(configs, {}, load_block=lambda name: "x")

    def no_block(name: str) -> str:
        raise ValueError(f"Unable to find block document named {name}")

    with pytest.raises(
        SubscriberConfigError,
        match="'bi': secret: cannot load the Prefect Secret block 'bi-webhook'",
    ):
        resolve_secrets(configs, {"PURCHASING_SECRET": "s"}, load_block=no_block)


def _one(**fields: object) -> str:
    values = {
        "name": '"app"',
        "url": f'"{URL}"',
        "events": '["sync.completed"]',
        "secret": '"env:APP_SECRET_VALUE_XYZ"',
        **fields,
    }
    return "[[subscribers]]\n" + "".join(f"{k} = {v}\n" for k, v in values.items() if v is not None)


APP = "subscriber 'app': "
BAD_FILES = {
    "bad-name": (_one(name='"App One"'), "subscribers #1: name: 'App One' is not a usable"),
    "bad-url": (_one(url='"ftp://x.example.com"'), APP + "url: must be an http(s) URL"),
    "no-url": (_one(url=None), APP + "url: must be an http(s) URL"),
    "no-events": (_one(events="[]"), APP + "events: must be a non-empty list"),
    "unknown-type": (_one(events='["stock.*", "x"]'), APP + "events: 'x' matches no event"),
    "secret-inline": (_one(secret=f'"{URL}"'), APP + "secret: must be 'env:VARIABLE'"),
    "zero-attempts": (_one(max_attempts="0"), APP + "max_attempts: must be a whole number"),
    "text-timeout": (_one(timeout_seconds='"10"'), APP + "timeout_seconds: must be a number"),
    "bad-enabled": (_one(enabled='"yes"'), APP + "enabled: must be true or false"),
    "unknown-key": (_one(colour='"red"'), APP + "colour: unknown key"),
    "duplicate": (_one() + _one(), APP + "name: used twice"),
    "unknown-default": ("[defaults]\nretries = 3\n", "defaults: retries: unknown key"),
    "unknown-top-level": ("subscriber = 1\n", "unknown key 'subscriber'"),
    "not-toml": ("[[subscribers]\n", "not valid TOML"),
}


@pytest.mark.parametrize(
    ("text", "message"), [pytest.param(*case, id=name) for name, case in BAD_FILES.items()]
)
def test_errors_name_file_subscriber_and_field_never_the_credentials(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SubscriberConfigError) as caught:
        load_subscribers(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)
    assert URL not in str(caught.value) and "tok_9f8e7d6c5b4a" not in str(caught.value)


def test_no_file_is_no_subscribers_and_a_named_missing_file_is_an_error(tmp_path: Path) -> None:
    assert all(not c for c in [load_subscribers(None)])  # the shipped example is disabled
    with pytest.raises(SubscriberConfigError, match="EVENT_SUBSCRIBERS_FILE: no subscribers file"):
        load_subscribers(tmp_path / "missing.toml")


def test_the_shipped_example_parses_and_the_setting_points_at_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert DEFAULT_SUBSCRIBERS_FILE.is_file()
    assert load_subscribers(DEFAULT_SUBSCRIBERS_FILE) == []  # its one example is disabled
    example = DEFAULT_SUBSCRIBERS_FILE.read_text().replace("enabled = false", "enabled = true")
    assert [c.name for c in load_subscribers(_write(tmp_path, example))] == ["purchasing-app"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVENT_SUBSCRIBERS_FILE", str(tmp_path / "events.toml"))
    assert load_settings().event_subscribers_file == tmp_path / "events.toml"
