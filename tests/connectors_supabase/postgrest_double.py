"""A small PostgREST-compatible server for tests, backed by a real PostgreSQL database.

It is a test double of Supabase's REST API (``/rest/v1``), not a product: it answers
``GET /rest/v1/<table>`` the way PostgREST does, for the part of PostgREST the connector
uses, and answers that part faithfully:

- ``select=a,b`` (or ``*``); an unknown column is ``400 {"code": "42703"}``;
- column filters ``col=[not.]op.value`` with ``eq, neq, gt, gte, lt, lte, is, in``;
  logic trees ``or=(...)``/``and=(...)`` nesting ``and(...)``/``or(...)``, with
  double-quoted values (``"a,b"``, backslash escapes); a filter that does not parse is
  ``400 {"code": "PGRST100"}``;
- ``order=col.asc,col2.desc.nullsfirst``;
- ``limit``/``offset`` and the ``Range`` header (``Range-Unit: items``), intersected;
- a ``max_rows`` cap (PostgREST's ``db-max-rows``): never more rows than that per answer;
- ``Prefer: count=exact`` -> ``Content-Range: 0-99/1234`` with 206 when the answer is a
  part of the total, 200 when it is all of it, ``*/0`` when empty, 416 ``PGRST103`` when the
  offset is past the total; without a count ``Content-Range: 0-99/*``;
- the schema from ``Accept-Profile`` (``406 PGRST106`` for one not exposed);
- an unknown table is ``404 {"code": "PGRST205"}``;
- Supabase's gateway: ``401`` without the ``apikey`` header or with a wrong one, and with an
  ``Authorization`` that is not ``Bearer <the key>``;
- values are rendered by PostgreSQL itself (``json_agg``, as PostgREST does), in the session
  ``TimeZone`` of the config, so timestamps carry that offset.

Values reach SQL only as literals (``psycopg.sql.Literal``) and names only as identifiers
checked against the catalog, so the double is safe to feed hostile input. Faults can be
queued (``fail_next``) and every request is recorded (``requests``).

Usage:
    with start_in_thread(DoubleConfig(db_url=url, api_key="k", max_rows=7)) as api:
        httpx.get(f"{api.rest_url}/items?select=id", headers={"apikey": "k"})
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
import psycopg
import uvicorn
from psycopg import sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_RESERVED = {"select", "order", "limit", "offset", "columns", "on_conflict"}
_LOGIC = {"or", "and", "not.or", "not.and"}
_COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_IS_VALUES = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}


@dataclass
class DoubleConfig:
    """What the double serves.

    Attributes:
        db_url: the PostgreSQL database standing in for Supabase's (``postgresql://...``).
        api_key: the only key accepted (as ``apikey`` and as ``Bearer``).
        max_rows: PostgREST's ``db-max-rows``: the most rows one answer holds (None: no cap).
            May be changed while the server runs.
        schemas: the exposed schemas; the first is the default.
        timezone: the session ``TimeZone`` timestamps are rendered in.
        counts: False to ignore ``Prefer: count=exact`` (``Content-Range: 0-9/*``), as a
            proxy that drops the header would.
    """

    db_url: str
    api_key: str
    max_rows: int | None = None
    schemas: tuple[str, ...] = ("public",)
    timezone: str = "UTC"
    counts: bool = True


@dataclass
class Recorded:
    """One request the double answered."""

    table: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    status: int
    rows: int


class ApiError(Exception):
    """An error answer: HTTP status and PostgREST's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: str | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "details": details, "hint": hint, "message": message}
        self.headers = headers or {}


@dataclass
class _Fault:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


@dataclass
class DoubleState:
    """The running double's state: config, database connection, faults, request log."""

    config: DoubleConfig
    requests: list[Recorded] = field(default_factory=list)
    _faults: deque[_Fault] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | str = "",
        *,
        times: int = 1,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests with this status and body instead."""
        raw = orjson.dumps(body) if isinstance(body, dict) else body.encode()
        kind = content_type or ("application/json" if isinstance(body, dict) else "text/plain")
        for _ in range(times):
            self._faults.append(_Fault(status, raw, kind, dict(headers or {})))

    def connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The one connection (callers hold ``_lock``)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.config.db_url, autocommit=True)
        return self._conn

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()


# -- request parsing ---------------------------------------------------------------------------


def _parse_error(what: str, text: str, details: str) -> ApiError:
    return ApiError(400, f'"failed to parse {what} ({text})"', code="PGRST100", details=details)


class _TreeParser:
    """Parses a logic tree ``(a.gt.1,and(b.eq."x,y",c.is.null))`` into SQL."""

    def __init__(self, text: str, columns: set[str], table: str) -> None:
        self.text = text
        self.pos = 0
        self.columns = columns
        self.table = table

    def fail(self, expected: str) -> ApiError:
        got = self.text[self.pos] if self.pos < len(self.text) else "end of input"
        return _parse_error(
            "logic tree", self.text, f'unexpected "{got}" at {self.pos + 1}, expecting {expected}'
        )

    def tree(self, op: str) -> sql.Composable:
        if not self.text.startswith("(", self.pos):
            raise self.fail('"("')
        self.pos += 1
        items = [self.item()]
        while self.text.startswith(",", self.pos):
            self.pos += 1
            items.append(self.item())
        if not self.text.startswith(")", self.pos):
            raise self.fail('"," or ")"')
        self.pos += 1
        joined = sql.SQL(f" {op.upper()} ").join(items)
        return sql.SQL("({})").format(joined)

    def item(self) -> sql.Composable:
        negate = False
        if self.text.startswith("not.", self.pos) and re.match(
            r"not\.(and|or)\(", self.text[self.pos :]
        ):
            negate = True
            self.pos += 4
        match = re.match(r"(and|or)\(", self.text[self.pos :])
        if match:
            self.pos += len(match.group(1))
            inner = self.tree(match.group(1))
            return sql.SQL("NOT {}").format(inner) if negate else inner
        name_match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\.", self.text[self.pos :])
        if not name_match:
            raise self.fail("a column name")
        column = name_match.group(1)
        self.pos += len(name_match.group(0))
        op_match = re.match(r"(not\.)?([a-z]+)\.", self.text[self.pos :])
        if not op_match:
            raise self.fail("an operator (eq, gt, ...)")
        self.pos += len(op_match.group(0))
        value = self.value(op_match.group(2) == "in")
        return _condition(column, op_match, value, self.columns, self.table, self.text)

    def value(self, parenthesized: bool) -> str:
        if parenthesized:
            end = self.text.find(")", self.pos)
            if end < 0:
                raise self.fail('")"')
            value = self.text[self.pos : end + 1]
            self.pos = end + 1
            return value
        if self.text.startswith('"', self.pos):
            out = []
            i = self.pos + 1
            while i < len(self.text):
                char = self.text[i]
                if char == "\\" and i + 1 < len(self.text):
                    out.append(self.text[i + 1])
                    i += 2
                    continue
                if char == '"':
                    self.pos = i + 1
                    return "".join(out)
                out.append(char)
                i += 1
            raise self.fail("a closing double quote")
        match = re.match(r'[^,()"]*', self.text[self.pos :])
        assert match is not None
        self.pos += len(match.group(0))
        return match.group(0)

    def done(self) -> None:
        if self.pos != len(self.text):
            raise self.fail("end of input")


def _condition(
    column: str,
    op_match: re.Match[str],
    value: str,
    columns: set[str],
    table: str,
    source: str,
) -> sql.Composable:
    if column not in columns:
        raise ApiError(400, f"column {table}.{column} does not exist", code="42703")
    negate, op = bool(op_match.group(1)), op_match.group(2)
    ident = sql.Identifier(column)
    if op in _COMPARISONS:
        cond: sql.Composable = sql.SQL("{} {} {}").format(
            ident, sql.SQL(_COMPARISONS[op]), sql.Literal(value)
        )
    elif op == "is":
        if value.lower() not in _IS_VALUES:
            raise _parse_error("filter", source, f'unexpected "{value}" expecting null or bool')
        cond = sql.SQL("{} IS {}").format(ident, sql.SQL(_IS_VALUES[value.lower()]))
    elif op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise _parse_error("filter", source, 'expecting "(" after in.')
        items = [v.strip('"') for v in value[1:-1].split(",")] if value != "()" else []
        cond = (
            sql.SQL("{} IN ({})").format(ident, sql.SQL(", ").join(sql.Literal(v) for v in items))
            if items
            else sql.SQL("FALSE")
        )
    else:
        raise _parse_error("filter", source, f'unknown operator "{op}"')
    return sql.SQL("NOT ({})").format(cond) if negate else cond


def _filter(column: str, text: str, columns: set[str], table: str) -> sql.Composable:
    op_match = re.match(r"(not\.)?([a-z]+)\.", text)
    if not op_match:
        raise _parse_error("filter", f"{column}={text}", 'expecting an operator such as "eq."')
    value = text[len(op_match.group(0)) :]
    return _condition(column, op_match, value, columns, table, f"{column}={text}")


def _order(text: str, columns: set[str], table: str) -> list[sql.Composable]:
    terms = []
    for term in text.split(","):
        parts = term.split(".")
        column, modifiers = parts[0], parts[1:]
        if column not in columns:
            raise ApiError(400, f"column {table}.{column} does not exist", code="42703")
        direction, nulls = "ASC", ""
        for modifier in modifiers:
            if modifier in ("asc", "desc"):
                direction = modifier.upper()
            elif modifier in ("nullsfirst", "nullslast"):
                nulls = " NULLS FIRST" if modifier == "nullsfirst" else " NULLS LAST"
            else:
                raise _parse_error("order", text, f'unexpected "{modifier}"')
        terms.append(sql.SQL("{} " + direction + nulls).format(sql.Identifier(column)))
    return terms


def _int_param(name: str, text: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise _parse_error(name, text, "expecting a non-negative integer")
    return int(text)


def _header_range(request: Request) -> tuple[int, int | None]:
    """``Range: 0-99`` (``Range-Unit: items``) -> (0, 99); absent -> (0, None)."""
    value = request.headers.get("range")
    if not value or request.headers.get("range-unit", "items") != "items":
        return 0, None
    match = re.fullmatch(r"\s*(\d+)-(\d*)\s*", value)
    if not match:
        return 0, None
    lower = int(match.group(1))
    upper = int(match.group(2)) if match.group(2) else None
    if upper is not None and upper < lower:
        raise ApiError(
            416,
            "Requested range not satisfiable",
            code="PGRST103",
            details=f"The lower boundary must be lower than or equal to the upper boundary "
            f"in the Range header ({value})",
        )
    return lower, upper


# -- the endpoint ------------------------------------------------------------------------------


def _check_key(state: DoubleState, request: Request) -> None:
    key = request.headers.get("apikey") or request.query_params.get("apikey")
    if not key:
        raise ApiError(
            401,
            "No API key found in request",
            hint="No `apikey` request header or url param was found.",
        )
    if key != state.config.api_key:
        raise ApiError(
            401,
            "Invalid API key",
            hint="Double check your Supabase `anon` or `service_role` API key.",
        )
    authorization = request.headers.get("authorization")
    if authorization is not None and authorization != f"Bearer {state.config.api_key}":
        raise ApiError(401, "JWSError JWSInvalidSignature", code="PGRST301")


def _columns(state: DoubleState, schema: str, table: str) -> list[str]:
    conn = state.connection()
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    if not rows:
        raise ApiError(
            404,
            f"Could not find the table '{schema}.{table}' in the schema cache",
            code="PGRST205",
        )
    return [r[0] for r in rows]


def _answer(state: DoubleState, request: Request, table: str) -> tuple[Response, int]:
    """The answer to one read, and how many rows it holds."""
    _check_key(state, request)
    schemas = state.config.schemas
    schema = request.headers.get("accept-profile", schemas[0])
    if schema not in schemas:
        raise ApiError(
            406,
            f"The schema must be one of the following: {', '.join(schemas)}",
            code="PGRST106",
        )
    with state._lock:
        all_columns = _columns(state, schema, table)
        known = set(all_columns)
        selected = all_columns
        conditions: list[sql.Composable] = []
        order: list[sql.Composable] = []
        limit: int | None = None
        offset = 0
        for name, value in request.query_params.multi_items():
            if name == "select":
                if any(c in value for c in "():!"):
                    raise _parse_error("select", value, "embedding, casts and aliases: not here")
                selected = all_columns if value.strip() == "*" else value.split(",")
                for column in selected:
                    if column not in known:
                        raise ApiError(400, f"column {table}.{column} does not exist", code="42703")
            elif name == "order":
                order = _order(value, known, table)
            elif name == "limit":
                limit = _int_param("limit", value)
            elif name == "offset":
                offset = _int_param("offset", value)
            elif name in _LOGIC:
                parser = _TreeParser(value, known, table)
                op = name.rsplit(".", 1)[-1]
                tree = parser.tree(op)
                parser.done()
                conditions.append(
                    sql.SQL("NOT {}").format(tree) if name.startswith("not.") else tree
                )
            elif name in _RESERVED or name == "apikey":
                continue
            else:
                if name not in known:
                    raise ApiError(400, f"column {table}.{name} does not exist", code="42703")
                conditions.append(_filter(name, value, known, table))

        # The Range header and limit/offset intersect; max-rows caps whatever is left.
        lower, upper = _header_range(request)
        lower = max(lower, offset)
        if limit is not None:
            upper = offset + limit - 1 if upper is None else min(upper, offset + limit - 1)
        if state.config.max_rows is not None:
            capped = lower + state.config.max_rows - 1
            upper = capped if upper is None else min(upper, capped)
        count_wanted = state.config.counts and "count=exact" in request.headers.get("prefer", "")

        source = sql.Identifier(schema, table)
        where = (
            sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
        )
        order_by = sql.SQL(" ORDER BY ") + sql.SQL(", ").join(order) if order else sql.SQL("")
        window = sql.SQL(" OFFSET {}").format(sql.Literal(lower))
        if upper is not None:
            window = sql.SQL(" LIMIT {}").format(sql.Literal(max(0, upper - lower + 1))) + window
        inner = (
            sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in selected), source
            )
            + where
            + order_by
            + window
        )
        body_query = sql.SQL(
            "SELECT coalesce(json_agg(_t), '[]')::text, count(_t) FROM ({}) _t"
        ).format(inner)
        conn = state.connection()
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('TimeZone', %s, true)", (state.config.timezone,))
                total = None
                if count_wanted:
                    count_row = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(source) + where
                    ).fetchone()
                    total = int(count_row[0]) if count_row else 0
                row = conn.execute(body_query).fetchone()
        except psycopg.Error as exc:
            raise _database_error(exc) from None
    assert row is not None
    body, returned = row[0], int(row[1])
    if total is not None and lower > total:
        raise ApiError(
            416,
            "Requested range not satisfiable",
            code="PGRST103",
            details=f"An offset of {lower} was requested, but there are only {total} rows.",
            headers={"Content-Range": f"*/{total}"},
        )
    shown_total = "*" if total is None else str(total)
    span = f"{lower}-{lower + returned - 1}" if returned else "*"
    status = 206 if total is not None and returned < total else 200
    response = Response(
        body.encode(),
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers={"Content-Range": f"{span}/{shown_total}"},
    )
    return response, returned


def _database_error(exc: psycopg.Error) -> ApiError:
    """PostgreSQL's error as PostgREST reports it (status from the SQLSTATE class)."""
    state = exc.sqlstate or ""
    diag = exc.diag
    status = 500
    if state == "42P01":
        status = 404
    elif state == "42501":
        status = 403
    elif state.startswith(("22", "23", "42", "P0")):
        status = 400
    return ApiError(
        status,
        diag.message_primary or str(exc),
        code=state or None,
        details=diag.message_detail,
        hint=diag.message_hint,
    )


def create_app(state: DoubleState) -> Starlette:
    """The Starlette app serving ``GET /rest/v1/{table}``."""

    def endpoint(request: Request) -> Response:
        table = request.path_params["table"]
        recorded = Recorded(
            table=table,
            params=list(request.query_params.multi_items()),
            headers=dict(request.headers),
            status=0,
            rows=0,
        )
        state.requests.append(recorded)
        try:
            if state._faults:
                fault = state._faults.popleft()
                recorded.status = fault.status
                return Response(
                    fault.body,
                    status_code=fault.status,
                    media_type=fault.content_type,
                    headers=fault.headers,
                )
            response, recorded.rows = _answer(state, request, table)
        except ApiError as error:
            response = Response(
                orjson.dumps(error.body),
                status_code=error.status,
                media_type="application/json; charset=utf-8",
                headers=error.headers,
            )
        recorded.status = response.status_code
        return response

    return Starlette(routes=[Route("/rest/v1/{table}", endpoint, methods=["GET"])])


# -- running it --------------------------------------------------------------------------------


class RunningDouble:
    """The double serving on loopback in a daemon thread; stop with ``stop`` or ``with``."""

    def __init__(
        self, state: DoubleState, base_url: str, server: uvicorn.Server, thread: threading.Thread
    ) -> None:
        self.state = state
        self.base_url = base_url
        """The project URL (what ``SUPABASE_URL`` is set to)."""
        self._server = server
        self._thread = thread

    @property
    def rest_url(self) -> str:
        """``{base_url}/rest/v1``."""
        return f"{self.base_url}/rest/v1"

    def stop(self) -> None:
        """Stop the server and close its database connection."""
        self._server.should_exit = True
        self._thread.join(5.0)
        self.state.close()

    def __enter__(self) -> RunningDouble:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(config: DoubleConfig) -> RunningDouble:
    """Start the double on 127.0.0.1 (a free port) and return once it serves.

    Raises:
        RuntimeError: when it does not come up within 15 seconds.
    """
    state = DoubleState(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="postgrest-double", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if server.started:
            return RunningDouble(state, base_url, server, thread)
        if not thread.is_alive():
            break
        time.sleep(0.01)
    server.should_exit = True
    raise RuntimeError(f"the PostgREST double did not start on {base_url}")
