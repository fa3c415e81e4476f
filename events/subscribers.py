"""Who receives events: the subscribers file (``EVENT_SUBSCRIBERS_FILE``), validated.

The file is TOML (``config/events.toml`` of the project by default)::

    [defaults]                      # optional; every key may also be set per subscriber
    timeout_seconds = 10
    max_attempts = 12

    [[subscribers]]
    name = "purchasing-app"         # lower case, digits, '-' and '_': the name in logs
    url = "https://app.example.com/hooks/invsync"
    events = ["purchase_order.*", "stock.below_reorder_point"]
    secret = "env:PURCHASING_APP_WEBHOOK_SECRET"   # or "block:purchasing-app-webhook"
    enabled = true

Loading happens in two steps so that commands which only need names and event types
(``invsync events list`` / ``replay``) never need the secrets: ``load_subscribers`` parses
and validates the file into ``SubscriberConfig`` (the secret is a *reference*), and
``resolve_secrets`` turns configs into ``Subscriber`` (the secret's value) at the edge.

A subscriber's URL and secret are credentials (a webhook URL often is one in itself): they
are ``SecretStr``, left out of every ``repr``, and never part of a message; messages name
the file, the subscriber and the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from events.outbox import EVENT_TYPES

#: ``config/events.toml`` of the project: used when ``EVENT_SUBSCRIBERS_FILE`` is not set.
DEFAULT_SUBSCRIBERS_FILE = Path(__file__).resolve().parents[1] / "config" / "events.toml"

#: A subscriber name is used in log lines and lock names (a file name on SQLite): keep it plain.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

#: Defaults of the per-subscriber delivery knobs (``[defaults]`` and each subscriber may
#: override them). Backoff between attempts is full jitter: uniform in
#: [0, min(backoff_max_seconds, backoff_base_seconds * 2**(attempt - 1))].
DEFAULTS: Mapping[str, float | int] = {
    "timeout_seconds": 10.0,
    "max_attempts": 12,
    "backoff_base_seconds": 30.0,
    "backoff_max_seconds": 3600.0,
    "breaker_failures": 5,
    "breaker_cooldown_seconds": 300.0,
}
_INTEGERS = {"max_attempts", "breaker_failures"}
_SUBSCRIBER_KEYS = {"name", "url", "events", "secret", "enabled", *DEFAULTS}


class SubscriberConfigError(Exception):
    """The subscribers file is missing, unreadable or invalid; the message names the file,
    the subscriber and the field, and says what to write instead."""


@dataclass(frozen=True)
class SubscriberConfig:
    """One subscriber as configured; ``secret_ref`` is ``env:VAR`` or ``block:NAME``.

    ``url`` is a ``SecretStr`` and is left out of the ``repr``, so a config logged or shown
    in a traceback names the subscriber only.
    """

    name: str
    url: SecretStr = field(repr=False)
    events: tuple[str, ...]
    secret_ref: str = field(repr=False)
    timeout_seconds: float = 10.0
    max_attempts: int = 12
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 300.0

    def wants(self, event_type: str) -> bool:
        """True when ``event_type`` matches one of the subscriber's patterns.

        A pattern is an exact type (``stock.below_reorder_point``), ``prefix.*`` (every type
        starting with ``prefix.``) or ``*`` (everything).
        """
        return any(_matches(pattern, event_type) for pattern in self.events)


@dataclass(frozen=True)
class Subscriber:
    """A subscriber ready to deliver to: its configuration and its secret's value."""

    config: SubscriberConfig
    secret: SecretStr = field(repr=False)

    @property
    def name(self) -> str:
        """The subscriber's name (the only thing about it that is ever logged)."""
        return self.config.name

    def credentials(self) -> list[str]:
        """The values that must never appear in a message: URL, host and secret."""
        from urllib.parse import urlsplit

        url = self.config.url.get_secret_value()
        host = urlsplit(url).netloc.rsplit("@", 1)[-1]
        return [url, url.rstrip("/"), self.secret.get_secret_value(), host]


def _matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def load_subscribers(path: Path | str | None = None) -> list[SubscriberConfig]:
    """Read and validate the subscribers file; disabled subscribers are left out.

    Args:
        path: the file (``EVENT_SUBSCRIBERS_FILE``); None = ``config/events.toml`` of the
            project, or no subscribers when there is none (an installed package).

    Raises:
        SubscriberConfigError: naming the file, the subscriber and the field at fault.
    """
    if path is None:
        if not DEFAULT_SUBSCRIBERS_FILE.is_file():
            return []
        path = DEFAULT_SUBSCRIBERS_FILE
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SubscriberConfigError(
            f"EVENT_SUBSCRIBERS_FILE: no subscribers file at {path}; create it (see "
            "config/events.toml) or unset EVENT_SUBSCRIBERS_FILE"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriberConfigError(f"EVENT_SUBSCRIBERS_FILE: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SubscriberConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_subscribers(raw, source=str(path))


def parse_subscribers(
    raw: Mapping[str, Any], source: str = "subscribers"
) -> list[SubscriberConfig]:
    """Validate the parsed TOML of a subscribers file (see ``load_subscribers``).

    Raises:
        SubscriberConfigError: naming ``source``, the subscriber and the field.
    """
    unknown = sorted(set(raw) - {"defaults", "subscribers"})
    if unknown:
        raise SubscriberConfigError(
            f"{source}: unknown key {unknown[0]!r}; expected [defaults] and [[subscribers]]"
        )
    defaults_raw = raw.get("defaults", {})
    if not isinstance(defaults_raw, Mapping):
        raise SubscriberConfigError(f"{source}: defaults must be a table ([defaults])")
    defaults = {**DEFAULTS, **_knobs(defaults_raw, f"{source}: defaults", strict=True)}
    entries = raw.get("subscribers", [])
    if not isinstance(entries, list):
        raise SubscriberConfigError(
            f"{source}: subscribers must be an array of tables ([[subscribers]])"
        )
    configs: list[SubscriberConfig] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise SubscriberConfigError(f"{source}: subscribers #{number} must be a table")
        config = _subscriber(entry, defaults, source, number)
        if config is None:
            continue
        if config.name in seen:
            raise SubscriberConfigError(
                f"{source}: subscriber {config.name!r}: name: used twice; names must be unique"
            )
        seen.add(config.name)
        configs.append(config)
    return configs


def _subscriber(
    entry: Mapping[str, Any], defaults: Mapping[str, Any], source: str, number: int
) -> SubscriberConfig | None:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SubscriberConfigError(
            f"{source}: subscribers #{number}: name: {name!r} is not a usable name; use lower "
            "case letters, digits, '-' and '_' (e.g. 'purchasing-app')"
        )
    where = f"{source}: subscriber {name!r}"
    unknown = sorted(set(entry) - _SUBSCRIBER_KEYS)
    if unknown:
        raise SubscriberConfigError(
            f"{where}: {unknown[0]}: unknown key; expected {', '.join(sorted(_SUBSCRIBER_KEYS))}"
        )
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SubscriberConfigError(f"{where}: enabled: must be true or false")
    url = entry.get("url")
    # Never echo the URL: it may carry a token.
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SubscriberConfigError(f"{where}: url: must be an http(s) URL (value not shown)")
    events = entry.get("events")
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, str) and e for e in events)
    ):
        raise SubscriberConfigError(
            f"{where}: events: must be a non-empty list of event types, 'prefix.*' or '*' "
            f"(types: {', '.join(EVENT_TYPES)})"
        )
    for pattern in events:
        if not any(_matches(pattern, t) for t in EVENT_TYPES):
            raise SubscriberConfigError(
                f"{where}: events: {pattern!r} matches no event type; choose from "
                f"{', '.join(EVENT_TYPES)}, or a 'prefix.*' of them"
            )
    secret = entry.get("secret")
    if not isinstance(secret, str) or not re.fullmatch(r"(env|block):\S+", secret):
        raise SubscriberConfigError(
            f"{where}: secret: must be 'env:VARIABLE' (an environment variable holding the "
            "signing secret) or 'block:NAME' (a Prefect Secret block); the secret itself does "
            "not belong in this file (value not shown)"
        )
    knobs = {**defaults, **_knobs(entry, where, strict=False)}
    if not enabled:
        return None
    return SubscriberConfig(
        name=name, url=SecretStr(url), events=tuple(events), secret_ref=secret, **knobs
    )


def _knobs(values: Mapping[str, Any], where: str, *, strict: bool) -> dict[str, Any]:
    """The delivery knobs in ``values``, checked (``strict``: no other key allowed)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in DEFAULTS:
            if strict:
                raise SubscriberConfigError(
                    f"{where}: {key}: unknown key; expected {', '.join(DEFAULTS)}"
                )
            continue
        whole = key in _INTEGERS
        number_ok = isinstance(value, int) if whole else isinstance(value, int | float)
        if isinstance(value, bool) or not number_ok or value <= 0:
            kind = "a whole number" if whole else "a number of seconds"
            raise SubscriberConfigError(f"{where}: {key}: must be {kind} above 0, not {value!r}")
        out[key] = int(value) if whole else float(value)
    if out.get("backoff_max_seconds", 1) < out.get("backoff_base_seconds", 0):
        raise SubscriberConfigError(
            f"{where}: backoff_max_seconds: must not be below backoff_base_seconds"
        )
    return out


#: Loads a Prefect Secret block's value by name (injectable for tests).
BlockLoader = Callable[[str], str]


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret

    value = Secret.load(name).get()  # type: ignore[union-attr]
    return value if isinstance(value, str) else str(value)


def resolve_secrets(
    configs: list[SubscriberConfig],
    environ: Mapping[str, str],
    *,
    load_block: BlockLoader = _prefect_secret,
    source: str = "EVENT_SUBSCRIBERS_FILE",
) -> list[Subscriber]:
    """Look up each subscriber's signing secret: ``env:VAR`` in ``environ``, ``block:NAME``
    in Prefect's Secret blocks. Called at the edge (flow, CLI), which passes the
    environment.

    Raises:
        SubscriberConfigError: naming the subscriber and the variable or block to set (never
            the value).
    """
    resolved: list[Subscriber] = []
    for config in configs:
        kind, _, ref = config.secret_ref.partition(":")
        where = f"{source}: subscriber {config.name!r}: secret"
        if kind == "env":
            value = environ.get(ref, "")
            if not value:
                raise SubscriberConfigError(
                    f"{where}: environment variable {ref} is not set or empty; set it to the "
                    "signing secret shared with the subscriber"
                )
        else:
            try:
                value = load_block(ref)
            except Exception as exc:  # ValueError, an unreachable API, a wrong block type
                raise SubscriberConfigError(
                    f"{where}: cannot load the Prefect Secret block {ref!r} "
                    f"({type(exc).__name__}); create it in the Prefect UI (Blocks > Secret)"
                ) from None
            if not value:
                raise SubscriberConfigError(f"{where}: the Prefect Secret block {ref!r} is empty")
        resolved.append(Subscriber(config=config, secret=SecretStr(value)))
    return resolved


def process_environment(env_file: Path | str = ".env") -> dict[str, str]:
    """The environment ``env:`` secrets are looked up in: the ``.env`` file (as the
    settings read it) overlaid by the process environment. Only edges (the flow, the CLI)
    call this; everything below is handed the result."""
    import os

    from dotenv import dotenv_values

    from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**from_file, **os.environ}


def subscribers_from_settings(
    path: Path | None, environ: Mapping[str, str], *, load_block: BlockLoader = _prefect_secret
) -> list[Subscriber]:
    """Load the subscribers file at ``path`` (``EVENT_SUBSCRIBERS_FILE``) and resolve secrets.

    Raises:
        SubscriberConfigError: naming the file, the subscriber and the field at fault.
    """
    return resolve_secrets(load_subscribers(path), environ, load_block=load_block)
