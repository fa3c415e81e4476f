"""A sandbox, a warehouse synced from it and the app tables, for the write-back tests
(a uniquely named module, importable from them).

Ground truth about Finale never comes from write-back: ``finale_orders`` pages the sandbox's
order collection with plain ``httpx``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.finale import FinaleClient
from connectors.finale.settings import FinaleSettings
from pipeline.entities import ENTITIES
from pipeline.sync import EntitySync, SyncOptions
from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, ssl_context, start_in_thread
from schemas import tables as wh
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade
from writeback import tables as app_tables
from writeback.migrate import create_app_engine, upgrade_app

#: Generated dates end a day ago, so every generated record is in a full read.
ANCHOR = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00")
#: A supplier Finale refuses on purchase orders (injected before the first sync, so the
#: warehouse knows it as a vendor).
DISABLED_SUPPLIER = {
    "partyId": "777001",
    "partyUrl": "/acme/api/partygroup/777001",
    "groupName": "Closed Seeds Ltd",
    "roleTypeIdList": ["SUPPLIER"],
    "statusId": "PARTY_DISABLED",
    "contactMechList": [],
    "lastUpdatedDate": (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S"),
}


def start_sandbox(**options: Any) -> SandboxHandle:
    """A private 300-product sandbox without rate limit."""
    config = {"port": 0, "products": 300, "rate_limit_per_minute": 0, "anchor": ANCHOR}
    return start_in_thread(SandboxConfig(**{**config, **options}))


def finale_settings(handle: SandboxHandle, **overrides: Any) -> FinaleSettings:
    """Connector settings for ``handle``."""
    cfg = handle.config
    values: dict[str, Any] = {
        "base_url": handle.base_url,
        "account": cfg.account,
        "api_key": cfg.api_key,
        "api_secret": SecretStr(cfg.api_secret),
        "rate_limit_per_minute": 1_000_000.0,
        "timezone": cfg.timezone,
        "timeout_seconds": 10.0,
        "max_retries": 3,
    }
    return FinaleSettings(**{**values, **overrides})


def sync_catalogue(engine: sa.Engine, handle: SandboxHandle) -> None:
    """Full sync of facilities, vendors and products (what write-back resolves through)."""
    options = SyncOptions(mode="full", tz=handle.config.timezone, quarantine_fail_ratio=0.5)
    with FinaleClient(finale_settings(handle)) as client:
        for name in ("facilities", "vendors", "products"):
            with EntitySync(
                ENTITIES[name], client, engine, run_id=str(uuid.uuid4()), options=options
            ) as sync:
                for chunk in sync.chunks():
                    sync.process(chunk)
                sync.finish()


@dataclass
class World:
    """The sandbox, one PostgreSQL database as warehouse and app, and helpers."""

    handle: SandboxHandle
    url: str
    engine: sa.Engine  # the warehouse (WAREHOUSE_SCHEMA)
    control: SandboxControl
    app: sa.Engine  # the app's tables (public), in the same database

    # -- the warehouse -------------------------------------------------------------------

    def vendor(self, enabled: bool = True) -> str:
        """A vendor's party id from the warehouse."""
        status = "PARTY_ENABLED" if enabled else "PARTY_DISABLED"
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(wh.vendors.c.party_id)
                    .where(wh.vendors.c.status == status, wh.vendors.c.deleted_at.is_(None))
                    .order_by(wh.vendors.c.party_id)
                )
                .scalars()
                .first()
            )

    def facility(self) -> tuple[str, str]:
        """(facility_id, facility_url) of a sub-location from the warehouse."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(wh.facilities.c.facility_id, wh.facilities.c.facility_url)
                .where(wh.facilities.c.parent_facility_id.is_not(None))
                .order_by(wh.facilities.c.facility_id)
            ).first()
        return row[0], row[1]

    def products(self, count: int, numeric_url: bool = False) -> list[tuple[str, str]]:
        """(sku, finale_url) of active products; ``numeric_url``: one whose URL is not
        ``/product/{sku}`` comes first."""
        p = wh.products.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.sku, p.finale_url)
                .where(p.status == "PRODUCT_ACTIVE", p.deleted_at.is_(None))
                .order_by(p.sku)
            ).all()
        found = [(r[0], r[1]) for r in rows]
        if numeric_url:
            found.sort(key=lambda r: r[1].endswith("/" + r[0]))
        return found[:count]

    # -- the app ---------------------------------------------------------------------------

    def add_request(
        self,
        vendor: str,
        lines: list[tuple[str, Any, Any]],
        facility: str | None = None,
        status: str = "draft",
    ) -> int:
        """Insert a request with lines (sku, quantity, unit price); returns its id."""
        with self.app.begin() as conn:
            request_id = conn.execute(
                sa.insert(app_tables.requests)
                .values(vendor_party_id=vendor, destination_facility_id=facility, status=status)
                .returning(app_tables.requests.c.id)
            ).scalar_one()
            self._insert_lines(conn, request_id, lines)
        return int(request_id)

    def _insert_lines(
        self, conn: sa.Connection, request_id: int, lines: list[tuple[str, Any, Any]]
    ) -> None:
        conn.execute(
            sa.insert(app_tables.lines),
            [
                {
                    "request_id": request_id,
                    "line_no": n,
                    "sku": sku,
                    "quantity": Decimal(str(qty)),
                    "unit_price": None if price is None else Decimal(str(price)),
                }
                for n, (sku, qty, price) in enumerate(lines, start=1)
            ],
        )

    def replace_lines(self, request_id: int, lines: list[tuple[str, Any, Any]]) -> None:
        """The app edits a request's lines."""
        with self.app.begin() as conn:
            conn.execute(
                sa.delete(app_tables.lines).where(app_tables.lines.c.request_id == request_id)
            )
            self._insert_lines(conn, request_id, lines)

    def set_status(self, request_id: int, status: str) -> None:
        """The app changes a request's status."""
        with self.app.begin() as conn:
            conn.execute(
                sa.update(app_tables.requests)
                .where(app_tables.requests.c.id == request_id)
                .values(status=status)
            )

    def request(self, request_id: int) -> dict[str, Any]:
        """The request row as stored."""
        with self.app.connect() as conn:
            row = (
                conn.execute(
                    sa.select(app_tables.requests).where(app_tables.requests.c.id == request_id)
                )
                .mappings()
                .one()
            )
        return dict(row)

    def conflicts(self, request_id: int) -> list[dict[str, Any]]:
        """The request's recorded conflicts, oldest first."""
        c = app_tables.conflicts
        with self.app.connect() as conn:
            rows = conn.execute(
                sa.select(c).where(c.c.request_id == request_id).order_by(c.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    # -- Finale, as the sandbox stores it ----------------------------------------------------

    def finale_orders(self, order_id: str) -> list[dict[str, Any]]:
        """Every stored order with ``orderId`` = ``order_id`` (plain HTTP)."""
        cfg = self.handle.config
        with httpx.Client(
            base_url=self.handle.api_url,
            auth=(cfg.api_key, cfg.api_secret),
            timeout=30.0,
            verify=ssl_context(),
        ) as http:
            body = http.get("/order/", params={"limit": 100_000}).json()
            names = list(body)
            rows = [
                {n: body[n][i] for n in names} for i in range(len(body[names[0]]) if names else 0)
            ]
            return [
                http.get(self.handle.base_url + r["orderUrl"]).json()
                for r in rows
                if r["orderId"] == order_id
            ]

    def finale_order(self, order_id: str) -> dict[str, Any]:
        """The one stored order with ``orderId`` (fails if there are none or several)."""
        found = self.finale_orders(order_id)
        assert len(found) == 1, f"{len(found)} orders with orderId {order_id}"
        return found[0]

    def finale_action(self, order_id: str, action: str) -> dict[str, Any]:
        """Someone in Finale locks, completes or cancels the order (plain HTTP)."""
        order = self.finale_order(order_id)
        key = {
            "lock": "actionUrlLock",
            "complete": "actionUrlComplete",
            "cancel": "actionUrlCancel",
        }[action]
        cfg = self.handle.config
        response = httpx.post(
            self.handle.base_url + order[key],
            json={},
            auth=(cfg.api_key, cfg.api_secret),
            verify=ssl_context(),
        )
        assert response.status_code == 200, response.text
        return response.json()


def make_world(handle: SandboxHandle, url: str) -> World:
    """Migrate both schemas into ``url``, sync the catalogue, return the helpers."""
    with SandboxControl(handle.base_url) as control:
        control.add_records("partygroup", [DISABLED_SUPPLIER])
    upgrade(url)
    upgrade_app(url)
    engine = create_warehouse_engine(url)
    sync_catalogue(engine, handle)
    return World(handle, url, engine, SandboxControl(handle.base_url), create_app_engine(url))


__all__ = ["World", "create_app_engine", "finale_settings", "make_world", "start_sandbox"]
