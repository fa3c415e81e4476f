"""Pandera schemas for the clean boundary: what a mapped row must satisfy to be loaded.

Every check carries a human ``error`` text: it becomes the quarantine reason, so it says
what is wrong in words an operator understands. Validation is always lazy (every failure
of every row is collected) and never stops the good rows of a chunk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera import Check

from writeback.tables import REQUEST_STATUSES

#: Quantities and money beyond this are data-entry errors, not stock.
ABSURD = 1e9

#: Decimal places the warehouse keeps for money and quantities (``Numeric(18, 4)``).
DECIMALS = 4


def _fits_decimals(values: pd.Series) -> pd.Series:
    """Whether each number has at most ``DECIMALS`` places (up to float noise: 0.1 + 0.2)."""
    numbers = values.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", over="ignore"):  # inf is the range check's to report
        rounded = np.round(numbers, DECIMALS)
        noise = 1e-9 * np.maximum(1.0, np.abs(numbers))
        fits = np.abs(numbers - rounded) <= noise
    return pd.Series(fits | ~np.isfinite(numbers), index=values.index)


def _id(name: str) -> pa.Column:
    return pa.Column(
        str,
        Check.str_length(min_value=1, error=f"{name} must not be blank"),
        nullable=False,
        coerce=True,
    )


def _name() -> pa.Column:
    return pa.Column(
        str, Check.str_length(min_value=1, error="name must not be blank"), nullable=False
    )


def _amount(what: str, *, signed: bool = False, exact: bool = True) -> pa.Column:
    """A money or quantity column read from Finale: in range and, when ``exact``, with no
    more decimals than the warehouse keeps (so a value is stored exactly or quarantined,
    never silently rounded). Computed columns (totals) pass ``exact=False``."""
    low = -ABSURD if signed else 0
    checks = [Check.in_range(low, ABSURD, error=f"{what} must be between {low:g} and {ABSURD:g}")]
    if exact:
        checks.append(
            Check(
                _fits_decimals,
                error=f"{what} has more than {DECIMALS} decimal places (the warehouse keeps "
                f"{DECIMALS})",
            )
        )
    return pa.Column(float, checks, nullable=True)


def _one_of(name: str, allowed: tuple[str, ...], *, nullable: bool) -> pa.Column:
    return pa.Column(
        str,
        Check.isin(allowed, error=f"{name} must be one of {', '.join(allowed)}"),
        nullable=nullable,
    )


def _status(*allowed: str) -> pa.Column:
    return _one_of("status", allowed, nullable=True)


facilities = pa.DataFrameSchema(
    {
        "facility_id": _id("facility_id"),
        "facility_url": _id("facility_url"),
        "name": _name(),
        "parent_facility_id": pa.Column(str, nullable=True),
        "status": pa.Column(str, nullable=True),
    },
    strict=False,
)

vendors = pa.DataFrameSchema(
    {
        "party_id": _id("party_id"),
        "finale_url": _id("finale_url"),
        "name": _name(),
        "status": _status("PARTY_ENABLED", "PARTY_DISABLED"),
        "email": pa.Column(
            str,
            Check.str_matches(r"^[^@\s]+@[^@\s]+$", error="email is not an address"),
            nullable=True,
        ),
    },
    strict=False,
)

products = pa.DataFrameSchema(
    {
        "sku": _id("sku"),
        "finale_url": _id("finale_url"),
        "name": _name(),
        "status": _status("PRODUCT_ACTIVE", "PRODUCT_INACTIVE"),
        "cost": _amount("cost"),
        "reorder_point": _amount("reorder_point"),
        "reorder_quantity": _amount("reorder_quantity"),
    },
    strict=False,
)

stock_items = pa.DataFrameSchema(
    {
        "sku": _id("sku"),
        "facility_id": _id("facility_id"),
        # Negative on-hand is real (oversold stock); negative orders or reservations are not.
        "quantity_on_hand": _amount("quantity_on_hand", signed=True),
        "quantity_on_order": _amount("quantity_on_order"),
        "quantity_reserved": _amount("quantity_reserved"),
    },
    strict=False,
)

purchase_orders = pa.DataFrameSchema(
    {
        "order_id": _id("order_id"),
        "finale_url": _id("finale_url"),
        "status": _status("ORDER_CREATED", "ORDER_LOCKED", "ORDER_COMPLETED", "ORDER_CANCELLED"),
        "total_amount": _amount("total_amount", signed=True, exact=False),
        # The server filter asks for purchase orders only, but a production client found
        # it unreliable: anything else that arrives is not loaded as a purchase order.
        "order_type": pa.Column(
            str, Check.isin(["PURCHASE_ORDER"], error="order type must be PURCHASE_ORDER")
        ),
    },
    strict=False,
)

purchase_order_lines = pa.DataFrameSchema(
    {
        "quantity": _amount("quantity"),
        "unit_price": _amount("unit_price"),
    },
    strict=False,
)

app_purchase_order_requests = pa.DataFrameSchema(
    {
        "request_id": _id("request_id"),
        "vendor_party_id": _id("vendor_party_id"),
        "status": _one_of("status", REQUEST_STATUSES, nullable=False),
    },
    strict=False,
)
