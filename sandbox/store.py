"""The sandbox's state: generated data, data versions, page cache and every change to them.

All public methods take ``self.lock``: uvicorn serves requests from one event loop, but the
control API and tests may reach the store from other threads.
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from sandbox import filters, timefmt, wire
from sandbox.cache import PageCache
from sandbox.columns import FilterError, Table, hashable, object_array
from sandbox.config import SandboxConfig
from sandbox.data import COLLECTIONS, AccountData


class ApiError(Exception):
    """An error answered as ``{"errorMessage": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@contextmanager
def _no_gc() -> Iterator[None]:
    # Rendering a page allocates hundreds of thousands of short-lived dicts and lists; the
    # cyclic GC would scan them over and over (measured: halves cold page throughput). They
    # contain no cycles, so pausing the collector is safe.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SandboxStore:
    """Generated account data plus everything that changes it.

    Args:
        config: the sandbox options.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.data = AccountData(
            products=config.products, seed=config.seed, account=config.account, anchor=config.anchor
        )
        self.api = f"/{config.account}/api"
        self.lock = threading.RLock()
        self.versions: dict[str, int] = dict.fromkeys(COLLECTIONS, 0)
        self.cache = PageCache(config.cache_bytes)
        self.stats: Counter[str] = Counter()
        self._matches: dict[tuple[str, int, str], np.ndarray] = {}
        self._control_draws = 0
        self._stock: tuple[int, dict[str, np.ndarray]] | None = None

    # -- basics ----------------------------------------------------------------------------

    def now(self) -> int:
        """Current account wall-clock time in seconds."""
        return timefmt.now_seconds(self.tz)

    def table(self, name: str) -> Table:
        """The table of a collection.

        Raises:
            ApiError: 404 for an unknown collection.
        """
        if name not in COLLECTIONS:
            raise ApiError(404, f"unknown collection {name!r}")
        with self.lock:
            return self.data.table(name)

    def bump(self, name: str) -> None:
        """Record a change to ``name``: cached pages and matches of it are dropped."""
        self.versions[name] += 1
        self.cache.drop(name)
        self._matches = {k: v for k, v in self._matches.items() if k[0] != name}
        if name == "inventoryitem":
            self._stock = None

    def _matching(self, table: Table, flt: filters.Filter) -> np.ndarray:
        key = (table.name, self.versions[table.name], flt.key)
        rows = self._matches.get(key)
        if rows is None:
            mask = flt.mask(table) if flt.clauses else table.alive
            rows = np.flatnonzero(mask)
            if len(self._matches) > 32:  # a full read reuses one filter for many pages
                self._matches.clear()
            self._matches[key] = rows
        return rows

    # -- reads -----------------------------------------------------------------------------

    def read_collection(
        self, name: str, *, filter_param: str | None, limit: int | None, offset: int
    ) -> bytes:
        """Encode one collection response.

        Result = filters -> ``offset`` -> first ``min(limit, max_entities)`` rows, in creation
        order. Bodies are cached per (collection, version, filter, offset, count).

        Raises:
            ApiError: 400 for a bad filter, 404 for an unknown collection.
        """
        with self.lock:
            table = self.table(name)
            flt = filters.Filter()
            if filter_param is not None:
                try:
                    spec = filters.decode_param(filter_param)
                    flt = filters.parse(
                        spec, table, tz=self.tz, now=self.now(), enforce_window=True
                    )
                except FilterError as exc:
                    raise ApiError(400, str(exc)) from None
            cap = self.config.max_entities
            count = cap if limit is None else min(limit, cap)
            key = (name, self.versions[name], flt.key, offset, count)
            body = self.cache.get(key)
            if body is None:
                rows = self._matching(table, flt)[offset : offset + count]
                with _no_gc():
                    body = wire.dumps(table.take(rows))
                self.cache.put(key, body)
            return body

    def count(self, name: str, spec: Any) -> int:
        """Rows matching ``spec`` (decoded filter), without cap or 30-day rule.

        Raises:
            ApiError: 400 for a bad filter.
        """
        with self.lock:
            table = self.table(name)
            try:
                flt = filters.parse(
                    spec or {}, table, tz=self.tz, now=self.now(), enforce_window=False
                )
            except FilterError as exc:
                raise ApiError(400, str(exc)) from None
            return len(self._matching(table, flt))

    def find_entity(self, path: str) -> tuple[Table, int] | None:
        """The (table, row) whose URL is exactly ``path``, or ``None``."""
        prefix = self.api + "/"
        if not path.startswith(prefix):
            return None
        name = path[len(prefix) :].split("/", 1)[0]
        if name not in COLLECTIONS or name == "inventoryitem":
            return None
        with self.lock:
            table = self.table(name)
            row = table.url_index().get(path)
            return None if row is None else (table, row)

    def entity(self, table: Table, row: int) -> dict[str, Any]:
        """One row in its single-entity (row object) wire form."""
        with self.lock:
            return table.row(row)

    # -- stock (GraphQL) -------------------------------------------------------------------

    def stock_totals(self) -> dict[str, np.ndarray]:
        """Per product row: sums of the generated entries' on-hand, on-order and reserved
        quantities (rounded to 3 decimals, the finest quantity served). One value per row
        of the product table; records injected through the control API do not count."""
        with self.lock:
            version = self.versions["inventoryitem"]
            products = len(self.table("product"))
            if (
                self._stock is None
                or self._stock[0] != version
                or len(self._stock[1]["quantityOnHand"]) != products
            ):
                inv = self.table("inventoryitem")
                info = self.data.inventory_info
                assert info is not None
                generated = len(info.product)
                totals = {}
                for field in ("quantityOnHand", "quantityOnOrder", "quantityReserved"):
                    values = np.nan_to_num(inv.numbers(field)[:generated]) * inv.alive[:generated]
                    sums = np.bincount(info.product, weights=values, minlength=products)
                    totals[field] = np.round(sums, 3)
                self._stock = (version, totals)
            return self._stock[1]

    def stock_by_facility(self, product_row: int) -> list[tuple[str, float]]:
        """On-hand quantity per sub-location for one product row (sub-locations where the
        product has any generated entry; an injected product has none)."""
        with self.lock:
            inv = self.table("inventoryitem")
            info = self.data.inventory_info
            assert info is not None
            if product_row >= len(info.counts):
                return []
            start = int(info.starts[product_row])
            rows = np.arange(start, start + int(info.counts[product_row]))
            sums: dict[str, float] = {}
            urls = inv.columns["facilityUrl"].take(rows)
            qty = np.nan_to_num(inv.numbers("quantityOnHand")[rows]) * inv.alive[rows]
            for url, q in zip(urls, qty.tolist(), strict=True):
                sums[url] = sums.get(url, 0.0) + q
            return [(url, round(q, 3)) for url, q in sums.items()]

    # -- control API -----------------------------------------------------------------------

    def _choose(self, candidates: np.ndarray, count: int, seed: int | None) -> np.ndarray:
        if seed is None:
            # Without an explicit seed, successive calls still form a reproducible sequence.
            self._control_draws += 1
            seed = self.config.seed * 1_000_003 + self._control_draws
        count = max(0, min(int(count), len(candidates)))
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(candidates, size=count, replace=False))

    def _ids(self, table: Table, rows: np.ndarray) -> list[Any]:
        return table.columns[table.key_field].take(rows) if table.key_field else rows.tolist()

    def touch(self, name: str, count: int, seed: int | None = None) -> list[Any]:
        """Change one field of ``count`` random records and set their lastUpdatedDate to now.

        Raises:
            ApiError: 400 for a collection without lastUpdatedDate.
        """
        with self.lock:
            table = self.table(name)
            if "lastUpdatedDate" not in table.columns:
                raise ApiError(400, f"{name} has no lastUpdatedDate and cannot be touched")
            rows = self._choose(np.flatnonzero(table.alive), count, seed)
            now = self.now()
            for row in rows.tolist():
                self._touch_field(table, row)
                table.columns["lastUpdatedDate"].set(row, now)
            self.bump(name)
            return self._ids(table, rows)

    def _touch_field(self, table: Table, row: int) -> None:
        cols = table.columns
        if table.name == "product":
            cost = cols["cost"].get(row)
            cols["cost"].set(row, round(cost + 0.01, 2) if isinstance(cost, float) else 9.99)
        elif table.name == "order":
            due = cols["dueDate"].seconds(row)  # type: ignore[attr-defined]
            cols["dueDate"].set(row, (due or self.now()) + timefmt.DAY)
        else:
            name_field = "facilityName" if table.name == "facility" else "groupName"
            name = cols[name_field].get(row)
            name = name if isinstance(name, str) else ""  # an injected record may hold anything
            cols[name_field].set(row, name if name.endswith(" (updated)") else name + " (updated)")

    def cancel_orders(self, count: int, seed: int | None = None) -> list[Any]:
        """Cancel ``count`` random draft or committed orders (as a Finale user would)."""
        with self.lock:
            table = self.table("order")
            status = object_array(table.columns["statusId"].take(np.arange(len(table))))
            open_rows = np.flatnonzero(
                table.alive & ((status == "ORDER_CREATED") | (status == "ORDER_LOCKED"))
            )
            rows = self._choose(open_rows, count, None)
            now = self.now()
            for row in rows.tolist():
                table.columns["statusId"].set(row, "ORDER_CANCELLED")
                table.columns["lastUpdatedDate"].set(row, now)
            self.bump("order")
            return self._ids(table, rows)

    def deactivate_products(self, count: int) -> list[Any]:
        """Mark ``count`` random active products inactive."""
        with self.lock:
            table = self.table("product")
            status = table.columns["statusId"]
            active_code = status.categories.index("PRODUCT_ACTIVE")  # type: ignore[attr-defined]
            active = np.flatnonzero(table.alive & (status.codes == active_code))  # type: ignore[attr-defined]
            rows = self._choose(active, count, None)
            now = self.now()
            for row in rows.tolist():
                status.set(row, "PRODUCT_INACTIVE")
                table.columns["lastUpdatedDate"].set(row, now)
            self.bump("product")
            return self._ids(table, rows)

    def delete(self, name: str, ids: list[Any]) -> list[Any]:
        """Delete records by key; returns the keys that existed.

        Raises:
            ApiError: 400 for ``inventoryitem`` (its rows have no key).
        """
        with self.lock:
            table = self.table(name)
            if table.key_field is None:
                raise ApiError(400, f"{name} rows have no id and cannot be deleted")
            index = table.key_index()
            deleted = [key for key in ids if hashable(key) and key in index]
            for key in deleted:
                table.delete(index[key])
            self.bump(name)
            return deleted

    def change_stock(self, count: int) -> tuple[list[str], list[str]]:
        """Move the on-hand quantity of ``count`` random on-hand entries (as an inventory
        variance would); on-order and reserved entries follow their orders and stay.

        Returns:
            The affected products' SKUs (``productId``) and their ``productUrl``s, each
            sorted and unique (a product with two changed entries is listed once).
        """
        with self.lock:
            table = self.table("inventoryitem")
            info = self.data.inventory_info
            assert info is not None
            generated = len(info.product)
            on_hand = table.numbers("quantityOnHand")[:generated]
            candidates = np.flatnonzero(table.alive[:generated] & (on_hand != 0))
            rows = self._choose(candidates, count, None)
            rng = np.random.default_rng(self.config.seed + len(rows) + self._control_draws)
            column = table.columns["quantityOnHand"]
            for row in rows.tolist():
                value = float(on_hand[row])
                delta = int(rng.integers(1, 25))
                # Keep the entry's single non-zero quantity non-zero.
                new = value + delta if value + delta != 0 else value + delta + 1
                column.set(row, new)
            self.bump("inventoryitem")
            products = self.table("product")
            product_rows = np.unique(info.product[rows])
            skus = products.columns["productId"].take(product_rows)
            urls = products.columns["productUrl"].take(product_rows)
            return sorted(skus), sorted(urls)

    def add_records(self, name: str, records: list[dict[str, Any]]) -> int:
        """Append ``records`` to collection ``name`` exactly as given (the control API's
        hostile-record injection); returns how many were added.

        The caller has checked that every record is a JSON object the wire encoder can
        serve. The collection's version is bumped, so no cached page hides them.
        """
        with self.lock:
            table = self.table(name)
            table.inject(records)
            self.bump(name)
            return len(records)

    def info(self) -> dict[str, Any]:
        """Account, accepted credentials and record counts (generates every collection)."""
        with self.lock:
            cfg = self.config
            return {
                "account": cfg.account,
                "api_root": self.api + "/",
                "credentials": {
                    "api_key": cfg.api_key,
                    "api_secret": cfg.api_secret,
                    "username": cfg.username,
                    "password": cfg.password,
                },
                "products": cfg.products,
                "seed": cfg.seed,
                "anchor": cfg.anchor,
                "timezone": cfg.timezone,
                "max_entities": cfg.max_entities,
                "counts": {name: self.table(name).alive_count() for name in COLLECTIONS},
                "versions": dict(self.versions),
                "generation_seconds": dict(self.data.timings),
            }
