"""JSON on the wire: the one encoder every response uses, and the lenient decoder of the
control API's injected records.

orjson serves every response. It refuses integers outside the 64-bit range, so an injected
integer beyond it is kept as a :class:`HugeInt` (an ``int`` that compares as one in filters)
and written as its exact digits through ``orjson.Fragment``.

Limits of injected values (answered 400 by ``POST /__sandbox__/records``, never served):
non-finite numbers (``NaN``, ``Infinity``, or a literal such as ``1e400`` that overflows a
double), integers of more than 4300 digits (Python's conversion limit), strings holding lone
UTF-16 surrogates (``"\\ud800"``: not encodable as UTF-8), and nesting deeper than about 245
levels (orjson stops at 255, counted from the top of the deepest response). Non-integral
numbers are stored as IEEE doubles: ``1E5`` is served as ``100000.0`` and
``0.1000000000000000000001`` as ``0.1``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
MAX_INT_DIGITS = 4300

_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS
_RESPONSE_DEPTH = 8  # levels above a record's value in the deepest response (GraphQL)


class HugeInt(int):
    """An injected integer outside orjson's 64-bit range; served with its exact digits."""

    __slots__ = ()


class WireError(ValueError):
    """A value the sandbox cannot serve; the message says which limit it hit."""


def _default(value: Any) -> Any:
    # OPT_PASSTHROUGH_SUBCLASS sends subclasses of str, int, float, dict and list here.
    if isinstance(value, HugeInt):
        return orjson.Fragment(int.__repr__(value).encode("ascii"))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise TypeError(f"type {type(value).__name__} is not JSON serializable")


def dumps(body: Any) -> bytes:
    """Encode a response body (orjson, plus exact digits for :class:`HugeInt`)."""
    return orjson.dumps(body, default=_default, option=_OPTIONS)


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise WireError(
            f"an integer of {digits} digits is too long: the sandbox keeps integers of at "
            f"most {MAX_INT_DIGITS} digits (Python's conversion limit)"
        )
    value = int(text)
    return value if INT64_MIN <= value <= UINT64_MAX else HugeInt(value)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise WireError(
            f"the number {text[:40]} overflows a double; the sandbox serves numbers with a "
            "fraction or an exponent as IEEE doubles, so it cannot be served"
        )
    return value


def _reject_constant(name: str) -> Any:
    raise WireError(f"{name} is not JSON; the sandbox cannot serve non-finite numbers")


def loads_lenient(raw: bytes) -> Any:
    """Decode a request body that may hold integers beyond 64 bits (orjson refuses those).

    Raises:
        WireError: for invalid JSON or a value the sandbox cannot serve (message says which).
    """
    try:
        return json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_reject_constant,
        )
    except WireError:
        raise
    except RecursionError:
        raise WireError("the request body is nested too deeply to decode") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"the request body is not valid JSON: {exc}") from None


def check_servable(value: Any) -> None:
    """Raise :class:`WireError` when the response encoder would refuse ``value``."""
    # Checked at the depth of the deepest response that may carry it (a GraphQL node), so
    # a value that passes here can be served by every read.
    wrapped = value
    for _ in range(_RESPONSE_DEPTH):
        wrapped = [wrapped]
    try:
        dumps(wrapped)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise WireError(
            f"the sandbox cannot serve this value ({exc}): its responses are encoded with "
            "orjson, which refuses strings with lone UTF-16 surrogates and nesting deeper "
            "than about 245 levels"
        ) from None
