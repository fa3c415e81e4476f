"""A small client for the sandbox's ``/__sandbox__/`` control API (tests and the demo)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from sandbox.server import ssl_context


class SandboxControl:
    """Drive a running sandbox: change data, inject faults, read ground truth.

    Args:
        base_url: the sandbox's base URL (``http://127.0.0.1:8700``).
        http: optional client to use (closed by :meth:`close` only if created here).
    """

    def __init__(self, base_url: str, http: httpx.Client | None = None) -> None:
        self._own = http is None
        self._http = http or httpx.Client(timeout=120.0, verify=ssl_context())
        self._root = base_url.rstrip("/") + "/__sandbox__"

    def _get(self, op: str) -> Any:
        response = self._http.get(f"{self._root}/{op}")
        response.raise_for_status()
        return response.json()

    def _post(self, op: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.post(f"{self._root}/{op}", json=body or {})
        if response.is_error:
            # Keep the server's errorMessage: it says which rule or limit the request broke.
            raise httpx.HTTPStatusError(
                f"{response.status_code} from {op}: {response.text[:500]}",
                request=response.request,
                response=response,
            )
        return response.json()

    def info(self) -> dict[str, Any]:
        """Account, credentials, counts per collection, versions, generation times."""
        return self._get("info")

    def stats(self) -> dict[str, Any]:
        """Requests served per kind, responses per status, 429s, faults, cache counters."""
        return self._get("stats")

    def count(self, collection: str, filter: dict[str, Any] | None = None) -> int:
        """Ground-truth count of records matching ``filter`` (no cap, no 30-day rule)."""
        return int(self._post("count", {"collection": collection, "filter": filter})["count"])

    def touch(self, collection: str, count: int, seed: int | None = None) -> list[Any]:
        """Change ``count`` records and set their lastUpdatedDate to now; returns their ids."""
        return self._post("touch", {"collection": collection, "count": count, "seed": seed})["ids"]

    def cancel_orders(self, count: int) -> list[Any]:
        """Cancel ``count`` draft or committed orders; returns their ids."""
        return self._post("cancel-orders", {"count": count})["ids"]

    def deactivate_products(self, count: int) -> list[Any]:
        """Mark ``count`` active products inactive; returns their ids."""
        return self._post("deactivate-products", {"count": count})["ids"]

    def delete(self, collection: str, ids: list[Any]) -> list[Any]:
        """Delete records by id; returns the ids that existed."""
        return self._post("delete", {"collection": collection, "ids": ids})["ids"]

    def change_stock(self, count: int) -> list[str]:
        """Move the on-hand quantity of ``count`` on-hand stock entries; returns the affected
        products' SKUs (``productId``), sorted and unique. Their ``productUrl``s are in the
        answer's ``productUrls`` (see :meth:`change_stock_urls`)."""
        return self._post("stock", {"count": count})["ids"]

    def change_stock_urls(self, count: int) -> list[str]:
        """Like :meth:`change_stock`, but returns the affected products' ``productUrl``s."""
        return self._post("stock", {"count": count})["productUrls"]

    def add_records(self, collection: str, records: list[dict[str, Any]]) -> int:
        """Append raw row objects to ``collection`` exactly as given (any JSON values, missing
        or extra keys) and return how many were added. They are served by the collection
        GET, matched by ``filter`` where their values compare, and reachable by a string
        URL field. Raises ``httpx.HTTPStatusError`` (with the server's errorMessage) for a
        value the sandbox cannot serve (see :mod:`sandbox.wire`)."""
        body = {"collection": collection, "records": records}
        return int(self._post("records", body)["added"])

    def set_faults(self, spec: str, seed: int = 0) -> None:
        """Replace the fault spec (``""`` turns faults off) and restart its seeded sequence."""
        self._post("faults", {"spec": spec, "seed": seed})

    def expire_sessions(self) -> int:
        """End every login session; returns how many there were."""
        return int(self._post("expire-sessions")["expired"])

    def lose_answers(self, count: int = 1, how: str = "timeout", writes: str = "create") -> int:
        """Apply the next ``count`` successful order ``writes`` and lose their answers.

        Args:
            count: how many writes to affect.
            how: ``"timeout"`` (silence for ``fault_delay`` seconds or until the client gives
                up, then 504) or ``"drop"`` (the connection closes mid-body).
            writes: ``"create"``, ``"update"`` (incl. ``edit``), ``"action"`` or ``"any"``.

        Returns:
            How many lost answers are armed in all.
        """
        body = {"count": count, "how": how, "writes": writes}
        return int(self._post("lose-answers", body)["armed"])

    def set_rate_limit(self, per_minute: int) -> None:
        """Replace the rate limit (0 = off); buckets start full."""
        self._post("rate-limit", {"per_minute": per_minute})

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own:
            self._http.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
