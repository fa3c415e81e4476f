"""Checks that stop a run before it starts, with one short message naming what to fix.

A warehouse that cannot be reached, a rejected Finale key or an unreachable Finale would
otherwise fail every entity of a run, one after another, each with its own long error. The
CLI runs these checks before it starts Prefect, and the ``finale-sync`` flow runs them before
its first entity, so such a run fails once, fast, naming the setting involved.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors.finale import FinaleClient, FinaleError
from warehouse.db import DEFAULT_SCHEMA
from warehouse.migrate import WarehouseElsewhere, upgrade


class PreflightError(Exception):
    """The run cannot start; the message names the setting to check."""


def check_warehouse(url: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Connect to the warehouse and bring its schema up to date.

    Args:
        url: ``WAREHOUSE_URL``.
        schema: ``WAREHOUSE_SCHEMA`` (PostgreSQL).

    Raises:
        PreflightError: naming WAREHOUSE_URL (password hidden) and the database's reason,
            or WAREHOUSE_SCHEMA when the warehouse is in another schema.
    """
    try:
        upgrade(url, schema=schema)
    except WarehouseElsewhere as exc:
        raise PreflightError(str(exc)) from exc
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        shown = make_url(url).render_as_string(hide_password=True)
        raise PreflightError(
            f"cannot use the warehouse at WAREHOUSE_URL={shown}: {reason}; check WAREHOUSE_URL "
            "and that the database is running and reachable"
        ) from exc


def check_finale(client: FinaleClient) -> None:
    """One small read from Finale with the configured credentials.

    Raises:
        PreflightError: the key is rejected (names the credential settings), Finale cannot
            be reached (names FINALE_BASE_URL; after a short bounded retry), or the read
            fails otherwise.
    """
    try:
        client.check_access()
    except FinaleError as exc:
        # The message names the setting; the masked body and URL stay on the exception
        # (shown with --verbose), to keep the line short.
        parts = [exc.message, f"HTTP {exc.status}" if exc.status else ""]
        if exc.attempts > 1:
            parts.append(f"gave up after {exc.attempts} attempts")
        raise PreflightError("; ".join(p for p in parts if p)) from exc
