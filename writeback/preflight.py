"""Checks that stop a write-back run before it starts, naming what to fix.

The Finale and warehouse checks are the sync's (``pipeline.preflight``); these add the app
database and a warehouse that has never been synced.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline.preflight import PreflightError
from schemas import tables as wh
from warehouse.db import DEFAULT_SCHEMA, create_warehouse_engine
from writeback.migrate import AppDatabaseError, check_app_schema, create_app_engine


def shown_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_app_database(url: str) -> None:
    """Connect to the app database and check its tables are there and current.

    Raises:
        PreflightError: naming SUPABASE_DB_URL (password hidden) and what to do.
    """
    try:
        engine = create_app_engine(url)
        try:
            check_app_schema(engine)
        finally:
            engine.dispose()
    except AppDatabaseError as exc:
        raise PreflightError(str(exc)) from exc
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise PreflightError(
            f"cannot use the app database at SUPABASE_DB_URL={shown_url(url)}: {_reason(exc)}; "
            "check SUPABASE_DB_URL and that the database is reachable"
        ) from exc


def check_catalogue(warehouse_url: str, schema: str = DEFAULT_SCHEMA) -> None:
    """The warehouse holds vendors and products (a Finale sync ran), else every request
    would fail as "unknown".

    Raises:
        PreflightError: naming the command that fills it.
    """
    engine = create_warehouse_engine(warehouse_url, schema=schema)
    try:
        with engine.connect() as conn:
            has_vendors = conn.execute(sa.select(wh.vendors.c.party_id).limit(1)).first()
            has_products = conn.execute(sa.select(wh.products.c.sku).limit(1)).first()
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise PreflightError(
            f"cannot read vendors and products from WAREHOUSE_URL={shown_url(warehouse_url)}: "
            f"{_reason(exc)}"
        ) from exc
    finally:
        engine.dispose()
    if has_vendors is None or has_products is None:
        raise PreflightError(
            "the warehouse has no vendors or products yet, and write-back resolves every "
            "request through them: run `invsync sync` (or wait for the scheduled sync) first"
        )
