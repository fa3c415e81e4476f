"""The ONE place Finale's column-major collection bodies are converted.

A collection answers ``{"field": [v0, v1, ...], ...}``: index i across all arrays is record i.
Code that expects a list of row objects silently gets zero rows, so nothing else in the
project should look at a raw collection body.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import msgspec
import pandas as pd

from connectors.finale.errors import FatalError, RetryableError


def payload_length(payload: Mapping[str, Any]) -> int:
    """Number of records in a column-major body, after checking its shape.

    ``{}`` and arrays of length 0 both mean "no records".

    Raises:
        FatalError: when the body is not an object of arrays (not a collection body).
        RetryableError: when the arrays have unequal lengths (a truncated or corrupt body).
    """
    if not isinstance(payload, Mapping):
        raise FatalError(
            f"expected a column-major collection body (an object of arrays), got "
            f"{type(payload).__name__}; is the URL a collection (with a trailing slash)?"
        )
    lengths: dict[int, list[str]] = {}
    for key, column in payload.items():
        if not isinstance(column, list):
            raise FatalError(
                f"expected a column-major collection body, but field {key!r} holds a "
                f"{type(column).__name__}, not an array; is the URL a single entity rather "
                "than a collection?"
            )
        lengths.setdefault(len(column), []).append(key)
    if len(lengths) > 1:
        summary = ", ".join(
            f"{n} in {', '.join(sorted(keys)[:3])}" for n, keys in sorted(lengths.items())
        )
        raise RetryableError(
            f"collection body has arrays of unequal length ({summary}); the body is truncated "
            "or corrupt, so no rows were taken from it; retrying"
        )
    return next(iter(lengths), 0)


def to_frame(payload: Mapping[str, Any]) -> pd.DataFrame:
    """Convert a column-major body into a DataFrame, one row per record.

    Columns are ``object`` dtype so values arrive exactly as Finale sent them: ``None`` stays
    ``None`` (not NaN), ids stay strings, nested lists stay lists. Typing is the job of the
    schemas at the boundary, not of the connector.

    Raises:
        FatalError: when the body is not an object of arrays.
        RetryableError: when the arrays have unequal lengths.
    """
    length = payload_length(payload)
    columns = {key: pd.Series(values, dtype=object) for key, values in payload.items()}
    return pd.DataFrame(columns, index=pd.RangeIndex(length))


def to_rows(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Convert a column-major body into a list of row dicts (same checks as ``to_frame``)."""
    payload_length(payload)
    keys = list(payload)
    return [dict(zip(keys, values, strict=True)) for values in zip(*payload.values(), strict=True)]


def first_row(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first record of a column-major body, or None when it is empty."""
    if payload_length(payload) == 0:
        return None
    return {key: column[0] for key, column in payload.items()}


_COLUMNS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_VALUES = msgspec.json.Decoder()
_UNDECODED_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def deferring_decoder(defer: Collection[str]) -> Callable[[bytes], Any]:
    """A decoder for collection bodies that leaves the ``defer`` fields' values undecoded.

    Decoding nested lists of objects is most of a collection body's cost. Fields nobody
    reads on the hot path (a product's ``priceList``, ``userFieldDataList``) can stay JSON
    text: each value of a deferred field is a ``msgspec.Raw`` (a JSON null included), and
    ``decode_deferred`` turns it back into the value Finale sent when it is needed (the
    payload of a quarantined record). Every other field decodes as usual.

    Raises (from the decoder):
        msgspec.DecodeError: the body is not valid JSON (truncated or corrupt).
    """
    deferred = frozenset(defer)

    def decode(body: bytes) -> Any:
        try:
            fields = _COLUMNS.decode(body)
        except msgspec.ValidationError:
            return _VALUES.decode(body)  # not an object: the shape checks say what it is
        decoded: dict[str, Any] = {}
        for name, values in fields.items():
            if name in deferred:
                try:
                    decoded[name] = _UNDECODED_ITEMS.decode(values)
                    continue
                except msgspec.ValidationError:
                    pass  # not an array: decoded whole, for payload_length to report
            decoded[name] = _VALUES.decode(values)
        return decoded

    return decode


def decode_deferred(value: Any) -> Any:
    """The value a deferred field held (see ``deferring_decoder``); other values unchanged."""
    return _VALUES.decode(value) if isinstance(value, msgspec.Raw) else value
