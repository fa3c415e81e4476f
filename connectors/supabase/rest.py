"""REST path: Supabase's PostgREST API through the official ``postgrest`` client.

Requests are built with ``SyncPostgrestClient`` (``select``, filters, ``order``,
``range``, ``count=exact``) and paged by keyset, like the direct path:
``or=(updated_at.gt.X,and(updated_at.eq.X,id.gt.K))``. Keyset paging stays correct when the
server returns fewer rows than asked (PostgREST's ``max-rows`` cap): the next page starts
after the last row received, whatever the page's size, and ``Content-Range``'s total
(``Prefer: count=exact``) says how many rows were left, so the read ends without an extra
empty request.

The request is sent with the builder's own ``RequestConfig.send`` instead of ``execute()``:
``execute()`` returns only the rows and the count, dropping the HTTP status (needed to tell
a 401 from a 400 from a 503: PostgREST's error body does not carry it) and the range of
``Content-Range`` (needed to see a cut page); it also retries 503s on its own with fixed
sleeps. Our one retry layer (``connectors.retry``) classifies and retries instead.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx
import orjson
import pandas as pd
from postgrest import CountMethod, SyncPostgrestClient
from postgrest._sync.request_builder import SyncSelectRequestBuilder

from connectors.redact import Redactor
from connectors.retry import Retrier, RetryPolicy, parse_retry_after
from connectors.supabase.errors import (
    REST_CREDENTIALS_HINT,
    AuthError,
    FatalError,
    RetryableError,
    SupabaseError,
    UnreachableError,
)
from connectors.supabase.reader import check_bounds
from connectors.supabase.settings import SupabaseSettings
from connectors.supabase.tables import AppTable, Kind

log = logging.getLogger(__name__)

USER_AGENT = "inventory-sync/0.1 (+supabase connector)"

# Failures that are our own bug or configuration: retrying cannot help.
_OUR_FAULT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


class RestReader:
    """Reads app tables through Supabase's REST API (PostgREST).

    Args:
        settings: the connector settings; ``url`` and ``service_role_key`` are required.
            ``page_size``, ``timeout_seconds`` and ``max_retries`` apply.
        http: an ``httpx.Client`` to send with (owned by the caller); when None the reader
            builds and owns one with the timeout from ``settings``.
        sleep: blocking sleep for backoff (injectable for tests).
        retry_policy: the retry budget; by default ``settings.max_retries`` retries.

    Raises:
        MissingSettingError: naming ``SUPABASE_URL`` or ``SUPABASE_SERVICE_ROLE_KEY``.
    """

    def __init__(
        self,
        settings: SupabaseSettings,
        http: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """Set up the reader; nothing is sent until the first read."""
        self.settings = settings
        self._base = settings.rest_url
        key = settings.key()
        self._redactor = Redactor([key])
        self._headers = {
            "Accept": "application/json",
            "apikey": key,
            "Authorization": f"Bearer {key}",
        }
        self._owns_http = http is None
        self._http = http if http is not None else _default_http(settings)
        self._clients: dict[str, SyncPostgrestClient] = {}
        self._retrier = Retrier(
            retry_policy or RetryPolicy(max_retries=settings.max_retries),
            sleep=sleep,
            system="Supabase REST",
            logger=log,
        )

    def __repr__(self) -> str:
        return f"RestReader(url={self._base!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this reader built it (a handed-in one stays open)."""
        if self._owns_http:
            self._http.close()

    # -- reads ---------------------------------------------------------------------------------

    def read_changed(
        self, table: AppTable, since: datetime | None = None, *, until: datetime | None = None
    ) -> Iterator[pd.DataFrame]:
        """Yield the rows changed after ``since`` in ``(cursor, key)`` order, page by page.

        See ``AppTableReader.read_changed``: same contract, same frames as the direct path.
        A page may hold fewer rows than ``page_size`` when the server caps its answers.
        """
        check_bounds(since, until)
        page_size = self.settings.page_size
        position: tuple[Any, Any] | None = None
        cap_reported = False
        while True:
            builder = self._page_query(table, since, until, position, page_size)
            rows, total = self._retrier.run(functools.partial(self._fetch, table, builder))
            if not rows:
                return
            yield table.frame(_by_column(table, rows), source="rest")
            if total is not None and len(rows) >= total:
                return  # the count was of the rows left: this page held them all
            if total is not None and len(rows) < page_size and not cap_reported:
                # Rows are left, yet fewer came than asked: the server's max-rows. Keyset
                # paging goes on from the last row whatever the page's size.
                cap_reported = True
                log.info(
                    "Supabase returned %d rows of %s where %d were asked (its max-rows cap); "
                    "paging on from the last row",
                    len(rows),
                    table.qualified_name,
                    page_size,
                )
            last = rows[-1]
            if position == (last[table.cursor], last[table.key]):
                # A server that ignores the keyset filter would serve this page forever.
                raise FatalError(
                    f"Supabase answered the page of {table.qualified_name} after "
                    f"({table.cursor}, {table.key}) = {position} with that same row again: it "
                    "did not apply the filter; check that SUPABASE_URL is a PostgREST API"
                )
            position = (last[table.cursor], last[table.key])

    def check_access(self, table: AppTable) -> None:
        """Read at most one row of ``table``, to fail before a run starts.

        Raises:
            AuthError, FatalError, RetryableError: as ``read_changed``.
        """
        builder = self._page_query(table, None, None, None, 1)
        self._retrier.run(lambda: self._fetch(table, builder))

    # -- requests ------------------------------------------------------------------------------

    def _client(self, schema: str) -> SyncPostgrestClient:
        client = self._clients.get(schema)
        if client is None:
            client = SyncPostgrestClient(
                self._base,
                schema=schema,  # sent as Accept-Profile
                headers=self._headers,
                http_client=self._http,
                retry_enabled=False,
            )
            self._clients[schema] = client
        return client

    def _page_query(
        self,
        table: AppTable,
        since: datetime | None,
        until: datetime | None,
        position: tuple[Any, Any] | None,
        limit: int,
    ) -> SyncSelectRequestBuilder:
        cursor, key = table.cursor, table.key
        query = (
            self._client(table.schema)
            .from_(table.name)
            .select(*table.column_names, count=CountMethod.exact)
        )
        if position is not None:
            stamp, last_key = _quote(position[0]), _quote(position[1])
            query = query.or_(f"{cursor}.gt.{stamp},and({cursor}.eq.{stamp},{key}.gt.{last_key})")
        elif since is not None:
            query = query.gt(cursor, since.astimezone(UTC).isoformat())
        else:
            query = query.not_.is_(cursor, None)  # rows with a NULL cursor are never read
        if until is not None:
            query = query.lte(cursor, until.astimezone(UTC).isoformat())
        return query.order(cursor).order(key).range(0, limit - 1)

    def _fetch(
        self, table: AppTable, builder: SyncSelectRequestBuilder
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One attempt: send, classify, parse. Returns the rows and the count of rows left."""
        try:
            return self._exchange(table, builder)
        except SupabaseError as exc:
            self._scrub(exc)
            raise

    def _exchange(
        self, table: AppTable, builder: SyncSelectRequestBuilder
    ) -> tuple[list[dict[str, Any]], int | None]:
        url = self._redactor.url(f"{self._base}/{table.name}")
        try:
            response = builder.request.send(httpx.Headers())
        except _OUR_FAULT as exc:
            raise FatalError(
                f"cannot send the request ({type(exc).__name__}: {exc}); check SUPABASE_URL",
                url=url,
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UnreachableError(
                f"cannot reach Supabase at {self._base} ({type(exc).__name__}: {exc}); check "
                "SUPABASE_URL and the network",
                url=url,
                maybe_processed=False,
            ) from None
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Supabase did not answer in time ({type(exc).__name__}); retrying. If this "
                "keeps happening, raise SUPABASE_TIMEOUT_SECONDS or lower SUPABASE_PAGE_SIZE",
                url=url,
            ) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise RetryableError(
                f"the connection to Supabase failed or was dropped ({type(exc).__name__}: "
                f"{exc}); retrying",
                url=url,
            ) from None
        url = self._redactor.url(str(response.request.url))
        if not response.is_success:
            raise self._status_error(response, url, table)
        return _rows_and_total(response, table, url, self._redactor)

    # -- classification ------------------------------------------------------------------------

    def _status_error(self, response: httpx.Response, url: str, table: AppTable) -> SupabaseError:
        status = response.status_code
        code, said = _server_message(response.content, self._redactor)
        server = f": {said}" if said else ""
        common: dict[str, Any] = {
            "url": url,
            "status": status,
            "code": code,
            "server_message": said,
        }
        name = table.qualified_name
        if status == 429 or status in (408, 425) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=time.time())
            what = "rate limit exceeded" if status == 429 else "transient server error"
            return RetryableError(
                f"Supabase {what}{server}; retrying", retry_after=retry_after, **common
            )
        if status == 401:
            return AuthError(
                f"Supabase rejected the API key{server}; {REST_CREDENTIALS_HINT}", **common
            )
        if status == 403:
            return AuthError(
                f"Supabase denied reading {name}{server}; SUPABASE_SERVICE_ROLE_KEY must be the "
                "service_role key (not the anon key), or grant the key's role SELECT on it",
                **common,
            )
        if status == 404 and code in ("PGRST205", "42P01"):
            return FatalError(
                f"Supabase has no table {name}{server}; check the table spec's name and schema",
                **common,
            )
        if status == 404:
            return FatalError(
                f"Supabase has nothing at this URL{server}; check SUPABASE_URL (the project "
                "URL, https://<ref>.supabase.co)",
                **common,
            )
        if status == 406 and code == "PGRST106":
            return FatalError(
                f"the schema {table.schema!r} is not exposed by Supabase's API{server}; expose it "
                "(Project Settings > API > Exposed schemas) or read through SUPABASE_DB_URL",
                **common,
            )
        if 300 <= status < 400:
            return FatalError(
                "Supabase answered with a redirect, which the connector does not follow; check "
                "SUPABASE_URL (scheme and host, e.g. https://<ref>.supabase.co)",
                **common,
            )
        return FatalError(
            f"Supabase refused to read {name}{server}; retrying will not help: fix the table "
            "spec (columns, key, cursor) or the table",
            **common,
        )

    def _scrub(self, exc: SupabaseError) -> None:
        """Mask the key in every text field of an error before it leaves the reader."""
        exc.message = self._redactor.text(exc.message)
        if exc.url:
            exc.url = self._redactor.url(exc.url)
        if exc.server_message:
            exc.server_message = self._redactor.text(exc.server_message)
        exc.args = (exc.message,)


def _default_http(settings: SupabaseSettings) -> httpx.Client:
    timeout = httpx.Timeout(settings.timeout_seconds, connect=min(settings.timeout_seconds, 5.0))
    return httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})


def _quote(value: Any) -> str:
    """A value for a PostgREST logic tree (``or=(...)``), double-quoted so that ``,``,
    ``.``, ``:`` and parentheses in it (every timestamp has some) stay part of the value."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _server_message(body: bytes, redactor: Redactor) -> tuple[str | None, str | None]:
    """PostgREST's ``code`` and its ``message`` with details and hint, masked and cut."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return None, redactor.body(text, limit=200) if text else None
    if not isinstance(data, dict):
        return None, redactor.body(json.dumps(data), limit=200)
    code = data.get("code")
    parts = [str(data.get("message") or data.get("msg") or "").strip()]
    for field in ("details", "hint"):
        if data.get(field):
            parts.append(f"{field}: {data[field]}")
    said = "; ".join(p for p in parts if p)
    return (str(code) if code else None), (redactor.body(said) if said else None)


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """``0-99/1234`` -> (0, 99, 1234); ``*/0`` -> (None, None, 0); ``0-99/*`` -> total None."""
    if not value:
        return None
    span, _, total_text = value.strip().partition("/")
    try:
        total = None if total_text in ("", "*") else int(total_text)
        if span == "*":
            return None, None, total
        first, _, last = span.partition("-")
        return int(first), int(last), total
    except ValueError:
        return None


def _rows_and_total(
    response: httpx.Response, table: AppTable, url: str, redactor: Redactor
) -> tuple[list[dict[str, Any]], int | None]:
    content_type = response.headers.get("content-type", "").lower()
    if "json" not in content_type:
        raise RetryableError(
            f"Supabase answered with {content_type or 'no content type'} instead of JSON "
            "(a proxy or login page?); retrying. If it persists, check SUPABASE_URL",
            url=url,
            status=response.status_code,
            server_message=redactor.body(response.content, limit=200),
        )
    try:
        if any(kind is Kind.DECIMAL for kind in table.columns.values()):
            # Exact numerics: the text PostgreSQL sent, as the direct path's Decimal.
            data = json.loads(response.content, parse_float=Decimal)
        else:
            data = orjson.loads(response.content)
    except ValueError as exc:
        raise RetryableError(
            f"Supabase's answer is not valid JSON ({len(response.content)} bytes, truncated or "
            f"corrupt: {exc}); retrying",
            url=url,
            status=response.status_code,
        ) from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise FatalError(
            f"expected a JSON array of rows from {table.qualified_name}, got "
            f"{type(data).__name__}; check SUPABASE_URL points at the project",
            url=url,
            status=response.status_code,
        )
    span = _content_range(response.headers.get("content-range"))
    total = span[2] if span is not None else None
    if span is not None and span[0] is not None and span[1] is not None:
        sent = span[1] - span[0] + 1
        if sent != len(data):
            raise RetryableError(
                f"Supabase's Content-Range ({response.headers['content-range']}) announces "
                f"{sent} rows but the body holds {len(data)}; retrying",
                url=url,
                status=response.status_code,
            )
    return data, total


def _by_column(table: AppTable, rows: list[dict[str, Any]]) -> Mapping[str, list[Any]]:
    missing = [c for c in table.column_names if c not in rows[0]]
    if missing:
        raise FatalError(
            f"Supabase's rows of {table.qualified_name} lack the columns {missing}; is "
            "the API's schema cache stale? (NOTIFY pgrst, 'reload schema')"
        )
    return {name: [row.get(name) for row in rows] for name in table.column_names}
