"""Building Relay connection queries and reading their pages.

Finale's GraphQL collections are Relay connections (``first``/``after``,
``edges { node cursor }``, ``pageInfo { hasNextPage endCursor }``). Scalars are
display-formatted unless ``formatter: "none"`` is passed, so every query built here passes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.finale.errors import FatalError, InvalidRequestError

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")


def render_literal(value: Any) -> str:
    """Render a Python value as a GraphQL literal (strings quoted, lists and objects nested)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string syntax is valid GraphQL string syntax (orjson never escapes "/").
        return orjson.dumps(value).decode()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_name(k)}: {render_literal(v)}" for k, v in value.items()) + "}"
    raise InvalidRequestError(f"cannot render {type(value).__name__} as a GraphQL literal")


def _name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequestError(f"{name!r} is not a GraphQL name")
    return name


def connection_query(connection: str, node_fields: str, args: Mapping[str, Any] | None) -> str:
    """Build the query for one page of ``connection``; variables ``$first`` and ``$after``.

    ``formatter: "none"`` is always passed (a caller's ``formatter`` is overridden), so values
    come back raw rather than display-formatted.
    """
    extra = {k: v for k, v in (args or {}).items() if k not in ("first", "after", "formatter")}
    rendered = "".join(f", {_name(k)}: {render_literal(v)}" for k, v in extra.items())
    return (
        "query ConnectionPage($first: Int!, $after: String) {\n"
        f'  {_name(connection)}(first: $first, after: $after, formatter: "none"{rendered}) {{\n'
        f"    edges {{ node {{ {node_fields} }} cursor }}\n"
        "    pageInfo { hasNextPage endCursor }\n"
        "  }\n"
        "}"
    )


@dataclass(frozen=True)
class ConnectionPage:
    """One page of a Relay connection.

    Attributes:
        nodes: the page's nodes, as Finale sent them.
        next_cursor: the cursor to ask for the next page, or None on the last page.
    """

    nodes: list[dict[str, Any]]
    next_cursor: str | None

    @classmethod
    def from_data(cls, data: Mapping[str, Any], connection: str) -> ConnectionPage:
        """Read a page from a query's ``data``.

        Raises:
            FatalError: when the shape is not a Relay connection, or the server claims a next
                page without a cursor for it.
        """
        conn = data.get(connection)
        if not isinstance(conn, Mapping):
            raise FatalError(
                f"GraphQL answer has no {connection!r} connection; check the connection name "
                "(e.g. productViewConnection, orderViewConnection, partyViewConnection)"
            )
        edges = conn.get("edges") or []
        nodes = [edge["node"] for edge in edges if isinstance(edge, Mapping) and edge.get("node")]
        info = conn.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            return cls(nodes, None)
        cursor = info.get("endCursor") or (edges[-1].get("cursor") if edges else None)
        if not cursor:
            raise FatalError(
                f"{connection}: Finale says there is a next page but gives no cursor for it"
            )
        return cls(nodes, str(cursor))
