"""Helpers shared by the sandbox tests (a uniquely named module, importable from them)."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.filters import encode_param
from sandbox.server import SandboxHandle, ssl_context

KEY = ("sandbox-key", "sandbox-secret")


def api_client(handle: SandboxHandle, **options: Any) -> httpx.Client:
    """An httpx client on the sandbox's API root with the default API key."""
    options.setdefault("auth", KEY)
    options.setdefault("timeout", 30.0)
    options.setdefault("verify", ssl_context())  # building a context per client costs 35 ms
    return httpx.Client(base_url=handle.api_url, **options)


def read_all(client: httpx.Client, collection: str, **params: Any) -> dict[str, list[Any]]:
    """One GET of a whole collection (the test accounts are below the entity cap)."""
    response = client.get(f"/{collection}/", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def rows(body: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Transpose a column-major body into row objects."""
    fields = list(body)
    length = len(body[fields[0]]) if fields else 0
    return [{f: body[f][i] for f in fields} for i in range(length)]


def flt(spec: dict[str, Any]) -> dict[str, str]:
    """Query parameters for a filter object."""
    return {"filter": encode_param(spec)}


def plain_get(url: str, **options: Any) -> httpx.Response:
    """``httpx.get`` with the shared SSL context (a fresh one costs 35 ms)."""
    return httpx.get(url, verify=ssl_context(), **options)


def plain_post(url: str, **options: Any) -> httpx.Response:
    """``httpx.post`` with the shared SSL context."""
    return httpx.post(url, verify=ssl_context(), **options)


class FakeClock:
    """A monotonic clock that moves only when the test moves it (``clock.advance(61)``).

    Handed to ``start_in_thread(..., clock=...)`` it drives session expiry and rate-limit
    refills, so tests cross a time limit without waiting for it. The server thread only
    reads the one float a test writes, so no lock is needed.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.now += seconds
