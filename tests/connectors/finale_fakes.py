"""Helpers for the Finale connector unit tests: settings, fake time, canned responses and a
tiny in-memory Finale that follows docs/finale-contract.md.

(A uniquely named module rather than ``conftest``, which is ambiguous across test folders.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from connectors.finale import FinaleClient, decode_filter
from connectors.finale.settings import FinaleSettings

BASE_URL = "https://finale.test"
ACCOUNT = "acme"
API = f"{BASE_URL}/{ACCOUNT}/api"
API_KEY = "key-1234"
API_SECRET = "s3cr3t-API-SECRET-value"
USERNAME = "robot@example.com"
PASSWORD = "hunter2-PASSWORD-value"
SESSION_ID = "SESSION-ID-0123456789abcdef"
NOW = datetime(2025, 3, 15, 12, 0, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]
ClientFactory = Callable[..., FinaleClient]
"""The ``make_client`` fixture: ``make_client(handler, settings=None, *, now, max_total_wait)``."""


def make_settings(**overrides: Any) -> FinaleSettings:
    """Basic-auth settings with a very high rate limit (so the limiter stays out of the way)."""
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "account": ACCOUNT,
        "api_key": API_KEY,
        "api_secret": SecretStr(API_SECRET),
        "rate_limit_per_minute": 1e9,
        "max_retries": 4,
    }
    values.update(overrides)
    return FinaleSettings(**values)


def session_settings(**overrides: Any) -> FinaleSettings:
    """Settings for session (username/password) auth."""
    return make_settings(
        api_key=None,
        api_secret=None,
        username=USERNAME,
        password=SecretStr(PASSWORD),
        **overrides,
    )


def columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows -> Finale's column-major body (missing fields become null)."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    return {k: [row.get(k) for row in rows] for k in keys}


def json_response(data: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=orjson.dumps(data),
        headers={"content-type": "application/json", **headers},
    )


def body_of(request: httpx.Request) -> dict[str, Any]:
    data = orjson.loads(request.content)
    assert isinstance(data, dict)
    return data


class FakeTime:
    """A monotonic clock that only moves when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []
        self.limiter_sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def limiter_sleep(self, seconds: float) -> None:
        self.limiter_sleeps.append(seconds)
        self.now += seconds


class FakeFinale:
    """An in-memory Finale collection server following docs/finale-contract.md.

    Result = lastUpdatedDate filter -> other filters -> offset -> first min(limit, cap) rows.
    Filters compare Finale timestamps as strings (same fixed format, so order is preserved).
    """

    def __init__(self, *, max_entities: int = 120_000, ignore_offset: bool = False) -> None:
        self.max_entities = max_entities
        self.ignore_offset = ignore_offset
        self.collections: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        prefix = f"/{ACCOUNT}/api/"
        path = request.url.path
        name = path[len(prefix) :]
        if not path.startswith(prefix) or not name.endswith("/"):
            return json_response({"errorMessage": "not found"}, 404)
        rows = self.collections.get(name.rstrip("/"))
        if rows is None:
            return json_response({"errorMessage": "not found"}, 404)
        params = request.url.params
        if "filter" in params:
            spec = decode_filter(params["filter"])
            date_range = spec.get("lastUpdatedDate")
            if date_range is not None:
                low, high = date_range
                span = datetime.fromisoformat(high) - datetime.fromisoformat(low)
                if span > timedelta(days=30):
                    return json_response({"errorMessage": "range wider than 30 days"}, 400)
            for field, (low, high) in spec.items():
                rows = [
                    r
                    for r in rows
                    if r.get(field) is not None
                    and (low is None or r[field] >= low)
                    and (high is None or r[field] <= high)
                ]
        offset = 0 if self.ignore_offset else int(params.get("offset", 0))
        limit = int(params.get("limit", self.max_entities))
        page = rows[offset:][: min(limit, self.max_entities)]
        return json_response(columns(page))

    def filters_sent(self) -> list[dict[str, Any]]:
        return [
            decode_filter(r.url.params["filter"]) for r in self.requests if "filter" in r.url.params
        ]
