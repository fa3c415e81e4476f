"""Finale's ``?filter=`` parameter: standard base64 of a compact JSON object.

The object maps a top-level scalar field to a closed range ``[low, high]``; ``null`` leaves
an end open and equal ends mean equality. For convenience a scalar value here means equality.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Any

import orjson

from connectors.finale.errors import InvalidRequestError
from connectors.finale.timestamps import to_wire


def normalize_filter(filter: Mapping[str, Any], tz: tzinfo = UTC) -> dict[str, list[Any]]:
    """Turn a filter mapping into Finale's ``{field: [low, high]}`` form, rendered for the wire.

    Args:
        filter: ``{field: [low, high]}`` or ``{field: value}`` (equality). Datetimes must be
            aware; they are rendered as Finale timestamps in ``tz``.
        tz: the account time zone.

    Raises:
        InvalidRequestError: for a range that is not two values, or a naive datetime.
    """
    result: dict[str, list[Any]] = {}
    for field, value in filter.items():
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise InvalidRequestError(
                    f"filter on {field!r} must be [low, high] (use None for an open end), "
                    f"got {len(value)} values"
                )
            bounds = list(value)
        elif isinstance(value, Mapping):
            raise InvalidRequestError(
                f"filter on {field!r}: Finale filters top-level scalar fields only"
            )
        else:
            bounds = [value, value]
        try:
            result[str(field)] = to_wire(bounds, tz)
        except ValueError as exc:
            raise InvalidRequestError(f"filter on {field!r}: {exc}") from exc
    return result


def encode_filter(filter: Mapping[str, Any], tz: tzinfo = UTC) -> str:
    """Encode a filter for ``?filter=``: standard base64 (with padding) of compact JSON.

    Example:
        >>> encode_filter({"statusId": "PRODUCT_ACTIVE"})
        'eyJzdGF0dXNJZCI6WyJQUk9EVUNUX0FDVElWRSIsIlBST0RVQ1RfQUNUSVZFIl19'
    """
    return base64.b64encode(orjson.dumps(normalize_filter(filter, tz))).decode("ascii")


def decode_filter(encoded: str) -> dict[str, Any]:
    """Decode a ``?filter=`` value back into its JSON object (for logs and tests)."""
    decoded = orjson.loads(base64.b64decode(encoded, validate=True))
    if not isinstance(decoded, dict):
        raise ValueError("a Finale filter is a JSON object")
    return decoded
