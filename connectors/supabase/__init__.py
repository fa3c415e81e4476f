"""Supabase connector: reads app tables incrementally by ``updated_at``, either straight
from PostgreSQL (``PostgresReader``) or through Supabase's REST API (``RestReader``), with
the same frames either way. No Prefect here.

Usage:
    >>> from connectors.supabase import AppTable, Kind, open_reader  # doctest: +SKIP
    >>> table = AppTable("purchase_order_requests", key="id", columns={"id": Kind.INTEGER})
    >>> with open_reader(settings.supabase()) as reader:  # doctest: +SKIP
    ...     for frame in reader.read_changed(table, since=watermark):
    ...         load(frame)
"""

from connectors.supabase.errors import (
    AuthError,
    FatalError,
    InvalidRequestError,
    MissingSettingError,
    RetryableError,
    SupabaseError,
    UnreachableError,
)
from connectors.supabase.postgres import PostgresReader
from connectors.supabase.reader import AppTableReader, Path, open_reader
from connectors.supabase.rest import RestReader
from connectors.supabase.settings import SupabaseSettings
from connectors.supabase.tables import AppTable, Kind

__all__ = [
    "AppTable",
    "AppTableReader",
    "AuthError",
    "FatalError",
    "InvalidRequestError",
    "Kind",
    "MissingSettingError",
    "Path",
    "PostgresReader",
    "RestReader",
    "RetryableError",
    "SupabaseError",
    "SupabaseSettings",
    "UnreachableError",
    "open_reader",
]
