"""Read the purchase-order requests write-back has to look at, and their content hash.

A request is looked at when it may need work: never pushed (and not cancelled), pushed to an
order Finale may still change (not completed or cancelled), or changed by the app since
write-back last looked (``updated_at > synced_at``). A request that failed is looked at
again only once the app changed it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa

from writeback import tables as t

#: The ``orderId`` prefix of orders write-back creates: ``APP-<request id>``.
ORDER_ID_PREFIX = "APP-"
#: Finale statuses after which an order cannot change any more.
FINAL_STATUSES = ("ORDER_COMPLETED", "ORDER_CANCELLED")


@dataclass(frozen=True)
class RequestLine:
    """One line of a request, as the app wrote it."""

    line_no: int
    sku: str
    quantity: Decimal
    unit_price: Decimal | None


@dataclass(frozen=True)
class PurchaseOrderRequest:
    """A request and its lines, read at ``read_at`` (the database clock).

    Attributes mirror ``purchase_order_requests`` (see ``docs/supabase.md``).
    """

    id: int
    vendor_party_id: str
    destination_facility_id: str | None
    status: str
    finale_order_id: str | None
    finale_order_url: str | None
    finale_status: str | None
    sync_status: str
    sync_error: str | None
    synced_hash: str | None
    lines: tuple[RequestLine, ...]
    read_at: datetime

    @property
    def order_id(self) -> str:
        """The Finale ``orderId`` of this request's order (derived, so a retry finds it)."""
        return self.finale_order_id or f"{ORDER_ID_PREFIX}{self.id}"

    @property
    def content_hash(self) -> str:
        """Hash of what is pushed to Finale: vendor, destination and lines (not the status,
        which moves through actions)."""
        return content_hash(self.vendor_party_id, self.destination_facility_id, self.lines)


def _number(value: Decimal | None) -> str | None:
    # 12, 12.0 and 12.0000 are one quantity: hash the normalised digits.
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def content_hash(
    vendor_party_id: str, destination_facility_id: str | None, lines: tuple[RequestLine, ...]
) -> str:
    """A stable 32-hex-digit hash of a request's pushed content."""
    canonical: list[Any] = [
        vendor_party_id.strip(),
        destination_facility_id.strip() if destination_facility_id else None,
        [
            [line.line_no, line.sku.strip(), _number(line.quantity), _number(line.unit_price)]
            for line in sorted(lines, key=lambda line: line.line_no)
        ],
    ]
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()[:32]


def candidates_query() -> sa.Select[Any]:
    """The requests that may need work, oldest first."""
    r = t.requests
    never_pushed = sa.and_(
        r.c.finale_order_id.is_(None),
        r.c.status != t.CANCELLED,
        sa.or_(
            r.c.sync_status != t.FAILED,
            r.c.synced_at.is_(None),
            r.c.updated_at > r.c.synced_at,
        ),
    )
    open_in_finale = sa.and_(
        r.c.finale_order_id.is_not(None),
        sa.or_(r.c.finale_status.is_(None), r.c.finale_status.not_in(FINAL_STATUSES)),
    )
    changed = sa.and_(
        r.c.finale_order_id.is_not(None),
        sa.or_(r.c.synced_at.is_(None), r.c.updated_at > r.c.synced_at),
    )
    read_at = sa.func.statement_timestamp().label("read_at")
    return (
        sa.select(r, read_at).where(sa.or_(never_pushed, open_in_finale, changed)).order_by(r.c.id)
    )


def load_candidates(conn: sa.Connection, limit: int | None = None) -> list[PurchaseOrderRequest]:
    """The requests that may need work, with their lines (two queries in one snapshot)."""
    query = candidates_query()
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).mappings().all()
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    by_request: dict[int, list[RequestLine]] = {i: [] for i in ids}
    lines = conn.execute(
        sa.select(t.lines)
        .where(t.lines.c.request_id.in_(ids))
        .order_by(t.lines.c.request_id, t.lines.c.line_no)
    ).mappings()
    for line in lines:
        by_request[line["request_id"]].append(
            RequestLine(line["line_no"], line["sku"], line["quantity"], line["unit_price"])
        )
    return [_request(row, tuple(by_request[row["id"]])) for row in rows]


def load_request(conn: sa.Connection, request_id: int) -> PurchaseOrderRequest | None:
    """One request with its lines, whatever its state (for tests and tools)."""
    r = t.requests
    row = (
        conn.execute(
            sa.select(r, sa.func.statement_timestamp().label("read_at")).where(r.c.id == request_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    lines = conn.execute(
        sa.select(t.lines).where(t.lines.c.request_id == request_id).order_by(t.lines.c.line_no)
    ).mappings()
    found = tuple(
        RequestLine(x["line_no"], x["sku"], x["quantity"], x["unit_price"]) for x in lines
    )
    return _request(row, found)


def _request(row: Any, lines: tuple[RequestLine, ...]) -> PurchaseOrderRequest:
    return PurchaseOrderRequest(
        id=int(row["id"]),
        vendor_party_id=row["vendor_party_id"],
        destination_facility_id=row["destination_facility_id"],
        status=row["status"],
        finale_order_id=row["finale_order_id"],
        finale_order_url=row["finale_order_url"],
        finale_status=row["finale_status"],
        sync_status=row["sync_status"],
        sync_error=row["sync_error"],
        synced_hash=row["synced_hash"],
        lines=lines,
        read_at=row["read_at"],
    )
