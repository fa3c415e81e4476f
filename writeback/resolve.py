"""Resolve a request's vendor, destination and SKUs to Finale URLs through the warehouse.

The URLs come from the rows the Finale sync loaded (``vendors``, ``facilities``, ``products``),
never built from an id: a product's URL is not always ``/product/{sku}``. Rows a full sync
marked deleted do not count.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from schemas import tables as wh
from writeback.requests import PurchaseOrderRequest


class Unresolvable(Exception):
    """The request names something the warehouse does not know; the message says what."""


@dataclass(frozen=True)
class Resolved:
    """What a request's ids stand for in Finale.

    Attributes:
        vendor_party_id: the supplier's ``partyId`` (as Finale spells it).
        vendor_url: the supplier's Finale URL.
        facility_url: the destination's ``facilityUrl``, or None when the request has none.
        product_urls: ``productUrl`` per line number.
    """

    vendor_party_id: str
    vendor_url: str
    facility_url: str | None
    product_urls: dict[int, str]


def resolve(conn: sa.Connection, request: PurchaseOrderRequest) -> Resolved:
    """Look the request's vendor, destination facility and SKUs up in the warehouse.

    Raises:
        Unresolvable: naming every unknown id, and what to do about it.
    """
    problems: list[str] = []
    if not request.lines:
        problems.append("the request has no lines: add at least one (SKU, quantity)")
    party_id = request.vendor_party_id.strip()
    vendor = conn.execute(
        sa.select(wh.vendors.c.party_id, wh.vendors.c.finale_url).where(
            wh.vendors.c.party_id == party_id, wh.vendors.c.deleted_at.is_(None)
        )
    ).first()
    if vendor is None:
        problems.append(
            f"vendor {party_id!r} is not a Finale supplier in the warehouse (vendors.party_id)"
        )
    facility_url = None
    if request.destination_facility_id:
        facility_id = request.destination_facility_id.strip()
        facility_url = conn.execute(
            sa.select(wh.facilities.c.facility_url).where(
                wh.facilities.c.facility_id == facility_id, wh.facilities.c.deleted_at.is_(None)
            )
        ).scalar_one_or_none()
        if facility_url is None:
            problems.append(
                f"destination facility {facility_id!r} is not a Finale facility in the "
                "warehouse (facilities.facility_id)"
            )
    skus = sorted({line.sku.strip() for line in request.lines})
    urls = (
        dict(
            conn.execute(
                sa.select(wh.products.c.sku, wh.products.c.finale_url).where(
                    wh.products.c.sku.in_(skus), wh.products.c.deleted_at.is_(None)
                )
            ).all()
        )
        if skus
        else {}
    )
    unknown = [
        f"line {line.line_no}: SKU {line.sku.strip()!r}"
        for line in request.lines
        if line.sku.strip() not in urls
    ]
    if unknown:
        problems.append(
            "unknown product "
            + "; ".join(unknown)
            + " (not in the warehouse's products: check the SKU, or run the Finale sync if "
            "the product is new)"
        )
    if problems:
        raise Unresolvable(f"request {request.id} cannot be sent to Finale: " + "; ".join(problems))
    assert vendor is not None
    return Resolved(
        vendor_party_id=vendor.party_id,
        vendor_url=vendor.finale_url,
        facility_url=facility_url,
        product_urls={line.line_no: urls[line.sku.strip()] for line in request.lines},
    )
