"""Finale Inventory connector: reads (column-major REST, incremental windows, GraphQL) and
order writes, with rate limiting, retries and secret-safe errors. No Prefect here.

Usage:
    >>> from connectors.finale import FinaleClient  # doctest: +SKIP
    >>> with FinaleClient(settings.finale()) as client:  # doctest: +SKIP
    ...     for chunk in client.iter_updated("product", since=watermark):
    ...         load(chunk.frame)
"""

from connectors.finale.client import FinaleClient, WindowChunk
from connectors.finale.columnar import to_frame, to_rows
from connectors.finale.display import (
    apply_converters,
    parse_display_date,
    parse_display_number,
    parse_duration_days,
)
from connectors.finale.errors import (
    AuthError,
    DuplicateOrderError,
    FatalError,
    FinaleError,
    InvalidRequestError,
    RetryableError,
    SessionExpired,
    UnreachableError,
)
from connectors.finale.filters import decode_filter, encode_filter
from connectors.finale.orders import OrderAction
from connectors.finale.ratelimit import RateLimiter, TokenBucket
from connectors.finale.stats import ClientStats
from connectors.finale.timestamps import format_finale_datetime, parse_finale_datetime
from connectors.redact import mask_url, redact_text
from connectors.retry import RetryPolicy

__all__ = [
    "AuthError",
    "ClientStats",
    "DuplicateOrderError",
    "FatalError",
    "FinaleClient",
    "FinaleError",
    "InvalidRequestError",
    "OrderAction",
    "RateLimiter",
    "RetryPolicy",
    "RetryableError",
    "SessionExpired",
    "TokenBucket",
    "UnreachableError",
    "WindowChunk",
    "apply_converters",
    "decode_filter",
    "encode_filter",
    "format_finale_datetime",
    "mask_url",
    "parse_display_date",
    "parse_display_number",
    "parse_duration_days",
    "parse_finale_datetime",
    "redact_text",
    "to_frame",
    "to_rows",
]
