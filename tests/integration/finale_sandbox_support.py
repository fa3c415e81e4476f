"""Helpers for the connector-against-sandbox tests (a uniquely named module, no package).

Ground truth comes from the sandbox itself, never from the connector: ``server_rows`` pages
a collection with plain ``httpx`` and ``limit``/``offset``, and ``SandboxControl.count``
counts with the server's own filter code. ``RequestLog`` records every exchange the
connector's ``httpx.Client`` makes (send time, URL, body, status, headers), so tests can
check windows, timing and headers on what actually crossed the wire.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
import pandas as pd
from pydantic import SecretStr

from connectors.finale import FinaleClient, RetryPolicy, decode_filter
from connectors.finale.settings import FinaleSettings
from sandbox.server import SandboxHandle, ssl_context

# The sandbox's account zone (with a DST change inside the generated dates) and distinctive
# credentials, so a "the secret is not in the message" check cannot pass by accident.
ACCOUNT_ZONE = "America/Chicago"
API_SECRET = "it-Secret-7f3a9c51"
PASSWORD = "it-Password-2b8e4d06"
# Small accounts keep the folder fast: 300 products, 22 facilities, 21 parties, 40 orders.
SANDBOX_DEFAULTS: dict[str, Any] = {
    "port": 0,
    "products": 300,
    "rate_limit_per_minute": 0,
    "timezone": ACCOUNT_ZONE,
    "api_secret": API_SECRET,
    "password": PASSWORD,
}

KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "facility": ("facilityId",),
    "partygroup": ("partyId",),
    "product": ("productId",),
    "order": ("orderId",),
    # Stock entries have no id: Finale documents one entry per unique combination of these
    # five fields (and promises no productId on them).
    "inventoryitem": (
        "facilityUrl",
        "lotId",
        "normalizedPackingString",
        "orderUrl",
        "productUrl",
    ),
}
COLLECTIONS = tuple(KEY_FIELDS)
DATED_COLLECTIONS = ("facility", "partygroup", "product", "order")
WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def settings_for(handle: SandboxHandle, *, auth: str = "basic", **overrides: Any) -> FinaleSettings:
    """Connector settings pointing at ``handle`` with Basic ("basic") or session auth."""
    cfg = handle.config
    values: dict[str, Any] = {
        "base_url": handle.base_url,
        "account": cfg.account,
        "timezone": cfg.timezone,
        "rate_limit_per_minute": 60_000.0,
        "timeout_seconds": 10.0,
        "max_retries": 6,
        "max_entities_per_response": cfg.max_entities,
    }
    if auth == "basic":
        values.update(api_key=cfg.api_key, api_secret=SecretStr(cfg.api_secret))
    elif auth == "session":
        values.update(username=cfg.username, password=SecretStr(cfg.password))
    else:
        raise ValueError(f"auth must be 'basic' or 'session', not {auth!r}")
    values.update(overrides)
    return FinaleSettings(**values)


def fast_retries(max_retries: int = 6) -> RetryPolicy:
    """Short, seeded backoff: the tests prove retries happen, not how long they sleep."""
    return RetryPolicy(
        max_retries=max_retries, base_delay=0.02, max_delay=0.2, rng=random.Random(0)
    )


# -- ground truth ------------------------------------------------------------------------------


def server_rows(handle: SandboxHandle, collection: str) -> list[dict[str, Any]]:
    """Every record of ``collection`` as the sandbox serves it, in creation order.

    Pages with ``limit`` = the sandbox's cap and ``offset``, so it also works on a sandbox
    with a small ``max_entities``.
    """
    cfg = handle.config
    page = cfg.max_entities
    rows: list[dict[str, Any]] = []
    with httpx.Client(
        base_url=handle.api_url,
        auth=(cfg.api_key, cfg.api_secret),
        timeout=30.0,
        verify=ssl_context(),
    ) as http:
        while True:
            response = http.get(f"/{collection}/", params={"limit": page, "offset": len(rows)})
            assert response.status_code == 200, response.text
            body = response.json()
            names = list(body)
            length = len(body[names[0]]) if names else 0
            rows.extend({n: body[n][i] for n in names} for i in range(length))
            if length < page:
                return rows


def key_of(collection: str, record: dict[str, Any]) -> Hashable:
    """The identity of one record (a tuple for stock rows)."""
    fields = KEY_FIELDS[collection]
    if len(fields) == 1:
        return record[fields[0]]
    return tuple(record[f] for f in fields)


def keys_of(collection: str, records: Iterable[dict[str, Any]]) -> list[Hashable]:
    """Identities of ``records``, in order (duplicates kept, so tests can count them)."""
    return [key_of(collection, r) for r in records]


def frame_records(frames: Iterable[pd.DataFrame]) -> list[dict[str, Any]]:
    """The records of the connector's frames, in order."""
    records: list[dict[str, Any]] = []
    for frame in frames:
        records.extend(frame.to_dict("records"))
    return records


def wire_time(moment: datetime) -> str:
    """A naive wall-clock datetime in Finale's wire format."""
    return moment.strftime(WIRE_FORMAT)


def parse_wire(text: str) -> datetime:
    """Finale's wire timestamp as a naive wall-clock datetime."""
    return datetime.strptime(text, WIRE_FORMAT)


# -- what crossed the wire ---------------------------------------------------------------------


@dataclass
class Exchange:
    """One HTTP request the connector sent and, if it arrived, the response's head."""

    sent: float
    method: str
    url: httpx.URL
    body: bytes
    cookies: str | None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    answered: float | None = None

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def filter(self) -> dict[str, Any] | None:
        """The decoded ``filter`` query parameter, if any."""
        raw = self.url.params.get("filter")
        return decode_filter(raw) if raw else None

    def json_body(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class RequestLog:
    """Records the connector's exchanges through ``httpx`` event hooks (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self._by_request: dict[int, Exchange] = {}
        self._watchers: list[Callable[[RequestLog], object]] = []

    def hooks(self) -> dict[str, list[Any]]:
        """``event_hooks`` for ``httpx.Client``."""
        return {"request": [self._on_request], "response": [self._on_response]}

    def watch(self, callback: Callable[[RequestLog], object]) -> None:
        """Call ``callback(self)`` after each response head has been recorded."""
        self._watchers.append(callback)

    def _on_request(self, request: httpx.Request) -> None:
        exchange = Exchange(
            sent=time.monotonic(),
            method=request.method,
            url=request.url,
            body=request.content,
            cookies=request.headers.get("cookie"),
        )
        with self._lock:
            self.exchanges.append(exchange)
            self._by_request[id(request)] = exchange

    def _on_response(self, response: httpx.Response) -> None:
        with self._lock:
            exchange = self._by_request.pop(id(response.request), None)
        if exchange is not None:
            exchange.status = response.status_code
            exchange.headers = {k.lower(): v for k, v in response.headers.items()}
            exchange.answered = time.monotonic()
        for callback in self._watchers:
            callback(self)

    def of(self, method: str | None = None, path_suffix: str = "") -> list[Exchange]:
        """Exchanges with ``method`` (any if None) whose path ends with ``path_suffix``."""
        with self._lock:
            return [
                e
                for e in self.exchanges
                if (method is None or e.method == method) and e.path.endswith(path_suffix)
            ]

    def statuses(self) -> list[int | None]:
        with self._lock:
            return [e.status for e in self.exchanges]


@dataclass
class Connection:
    """A connector client, the settings it was built with and its wire log."""

    client: FinaleClient
    log: RequestLog
    settings: FinaleSettings


Connect = Callable[..., Connection]
"""The ``connect`` fixture: ``connect(handle, auth=..., timeout=..., **settings)``."""
