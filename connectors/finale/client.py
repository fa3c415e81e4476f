"""``FinaleClient``: the public face of the connector (reads, incremental windows, writes).

The client composes the small pieces: ``Transport`` (throttle, auth, retry, classify),
``OffsetPaging`` (full reads), ``WindowPlan``/``Window`` (incremental reads),
``columnar`` (the only body conversion) and ``graphql``/``display`` (Relay paging). It does no
I/O of its own and never imports Prefect: tasks wrap it.

Point it at the local sandbox by setting ``base_url`` in ``FinaleSettings`` to
``http://127.0.0.1:PORT``; every URL is derived from ``base_url`` and ``account``.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx
import pandas as pd

from connectors.finale.auth import build_authenticator
from connectors.finale.columnar import deferring_decoder, payload_length, to_frame
from connectors.finale.display import DEFAULT_CONVERTERS, Converter, apply_converters
from connectors.finale.errors import (
    AuthError,
    DuplicateOrderError,
    FatalError,
    InvalidRequestError,
)
from connectors.finale.filters import encode_filter
from connectors.finale.graphql import ConnectionPage, connection_query
from connectors.finale.orders import (
    ACTION_TARGET_STATUS,
    ACTION_URL_KEYS,
    ACTION_VALID_FROM,
    FINAL_STATUSES,
    OrderAction,
    check_write_body,
    describe,
    is_duplicate_order_message,
)
from connectors.finale.paging import OffsetPaging
from connectors.finale.ratelimit import RateLimiter
from connectors.finale.settings import FinaleSettings
from connectors.finale.stats import ClientStats
from connectors.finale.transport import Timeout, Transport
from connectors.finale.windows import (
    MAX_WINDOW_DAYS,
    ONE_SECOND,
    Window,
    WindowPacer,
    WindowPlan,
)
from connectors.redact import Redactor
from connectors.retry import RetryPolicy

log = logging.getLogger(__name__)

USER_AGENT = "inventory-sync/0.1 (+finale connector)"
_COLLECTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(/[A-Za-z0-9_]+)*$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, eq=False)
class WindowChunk:
    """A slice of the records updated within one ``lastUpdatedDate`` window.

    A window here is a range read whole: one request, or a one-second range paged with
    ``offset``. ``iter_updated`` walks each planned (30-day) window in such parts, so the
    windows of consecutive chunks are adjacent and in time order.

    Attributes:
        frame: the records (object columns, one row per record); may be empty when the
            window had no updates, so the caller can still advance its watermark.
        window_start: first instant of the window (aware UTC, inclusive).
        window_end: last instant of the window (aware UTC, inclusive).
        last_in_window: True on the window's last chunk; only then has the whole window been
            delivered, so only then may a watermark advance to ``window_end``.
    """

    frame: pd.DataFrame
    window_start: datetime
    window_end: datetime
    last_in_window: bool


class FinaleClient:
    """Client for Finale's REST and GraphQL API.

    Args:
        settings: connection settings (URL, account, credentials, limits, time zone).
        http: an ``httpx.Client`` to send with (e.g. built on ``httpx.MockTransport`` in tests);
            when None the client builds and owns one with the timeouts from ``settings``.
        clock: monotonic seconds, for the rate limiter.
        sleep: blocking sleep, for the rate limiter and backoff.
        now: current aware UTC time, the default end of incremental reads.
        limiter: a rate limiter to share between clients using the same credentials; by
            default each client has its own at ``settings.rate_limit_per_minute``.
        retry_policy: the retry budget; by default ``settings.max_retries`` retries within
            at most 5 minutes of waiting per request.

    Thread-safe: one client may serve several threads (rate limit and session are shared).

    Example:
        >>> with FinaleClient(settings) as client:  # doctest: +SKIP
        ...     for frame in client.iter_collection("facility"):
        ...         print(len(frame))
    """

    def __init__(
        self,
        settings: FinaleSettings,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utcnow,
        limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """Set up the client; nothing is sent until the first call."""
        self.settings = settings
        self.stats = ClientStats()
        self._tz = settings.tz
        self._now = now
        self._api = f"{settings.account_url}/api"
        # Built first: it raises on missing credentials before any connection pool exists.
        auth = build_authenticator(settings, f"{self._api}/auth")
        redactor = Redactor(
            [
                settings.api_secret.get_secret_value() if settings.api_secret else None,
                settings.password.get_secret_value() if settings.password else None,
            ]
        )
        if settings.uses_basic_auth and settings.api_key and settings.api_secret:
            redactor.add_basic_credentials(settings.api_key, settings.api_secret.get_secret_value())
        self._owns_http = http is None
        self._http = http if http is not None else _default_http(settings)
        self._transport = Transport(
            self._http,
            base_url=settings.base_url,
            tz=self._tz,
            auth=auth,
            limiter=limiter
            or RateLimiter.per_minute(
                settings.rate_limit_per_minute,
                clock=clock,
                sleep=sleep,
                wall_clock=lambda: now().timestamp(),
            ),
            policy=retry_policy or RetryPolicy(max_retries=settings.max_retries),
            sleep=sleep,
            stats=self.stats,
            redactor=redactor,
        )

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
        """Close the HTTP client if this client built it (a handed-in one stays open)."""
        if self._owns_http:
            self._http.close()

    @property
    def api_url(self) -> str:
        """``{base_url}/{account}/api``: the root of every collection."""
        return self._api

    def check_access(self) -> None:
        """One small read (a page of one facility), to fail before a run starts.

        Raises:
            AuthError: the credentials are rejected (names the settings to fix).
            UnreachableError: Finale cannot be reached (names FINALE_BASE_URL), after the
                short unreachable retry budget.
            FinaleError: any other failure of the request.
        """
        self._read_collection(self._collection_url("facility"), {"limit": 1, "offset": 0})

    # -- full reads ----------------------------------------------------------------------------

    def iter_collection(
        self,
        collection: str,
        *,
        page_size: int = 20_000,
        filter: dict[str, Any] | None = None,
        defer: Collection[str] = (),
    ) -> Iterator[pd.DataFrame]:
        """Read a whole collection, one DataFrame per page, with ``limit``/``offset`` paging.

        The page size is capped at ``settings.max_entities_per_response``: a page cut by the
        server's cap would otherwise look short and end the read early. Empty pages are not
        yielded (an empty collection yields nothing).

        Args:
            collection: e.g. ``"product"``, ``"inventoryitem"`` (requested with a trailing
                slash).
            page_size: records per request.
            filter: optional Finale filter, ``{field: [low, high]}`` or ``{field: value}``.
            defer: fields whose values stay undecoded JSON (``msgspec.Raw``; see
                ``columnar.deferring_decoder``): nested lists the caller does not read.

        Raises:
            InvalidRequestError: at call time, for a bad collection name, page size or filter.
            FatalError: while iterating, when the server ignores ``offset`` (pages repeat),
                or for a 4xx.
            RetryableError: while iterating, when a transient failure outlived the retries.
        """
        if page_size < 1:
            raise InvalidRequestError(f"page_size must be at least 1, got {page_size}")
        url = self._collection_url(collection)
        encoded = encode_filter(filter, self._tz) if filter else None
        size = min(page_size, self.settings.max_entities_per_response)

        def fetch(limit: int, offset: int) -> Mapping[str, Any]:
            params: dict[str, str | int] = {"limit": limit, "offset": offset}
            if encoded:
                params["filter"] = encoded
            return self._read_collection(url, params, defer)

        def frames() -> Iterator[pd.DataFrame]:
            for payload in OffsetPaging(size, label=collection).pages(fetch):
                yield to_frame(payload)

        return frames()

    # -- incremental reads ---------------------------------------------------------------------

    def iter_updated(
        self,
        collection: str,
        *,
        since: datetime,
        until: datetime | None = None,
        window_days: int = MAX_WINDOW_DAYS,
        overlap: timedelta = timedelta(minutes=5),
        extra_filter: dict[str, Any] | None = None,
        chunk_size: int = 20_000,
        defer: Collection[str] = (),
    ) -> Iterator[WindowChunk]:
        """Read the records updated in ``[since - overlap, until or now]``, in parts.

        The range is planned in windows of at most ``window_days`` days (closed, whole
        seconds; the next starts one second after the previous ends), and each window is
        walked in adjacent parts sized (by ``WindowPacer``) to hold about 80% of a page of
        ``min(chunk_size, settings.max_entities_per_response)`` records, so memory stays
        flat however many records a window holds. Each part is read in one request, with
        ``limit`` and without ``offset``: a snapshot that no concurrent update can shift.
        A response that comes back full may have been cut, so that part is halved and
        re-read; nothing is ever truncated. (A one-second part that is still full is paged
        with ``limit``/``offset``.)

        Each part read yields one chunk, even an empty one, marked ``last_in_window`` with
        the part's bounds, so the caller can advance its watermark to ``window_end`` then.
        (A paged second yields one chunk per page; only its last is marked.)

        Args:
            collection: e.g. ``"product"``, ``"order"``.
            since: aware datetime, usually the stored watermark.
            until: aware datetime; None means now.
            window_days: widest window, 1 to 30 days.
            overlap: how far before ``since`` to start, once, to catch late writes.
            extra_filter: more filters (e.g. ``{"orderTypeId": "PURCHASE_ORDER"}``).
            chunk_size: most rows per yielded frame, and per response.
            defer: fields left undecoded (see ``iter_collection``).

        Raises:
            InvalidRequestError: at call time, for naive datetimes or bad arguments.
            FatalError / RetryableError: while iterating (see ``iter_collection``).
        """
        if chunk_size < 1:
            raise InvalidRequestError(f"chunk_size must be at least 1, got {chunk_size}")
        extra = dict(extra_filter or {})
        if "lastUpdatedDate" in extra:
            raise InvalidRequestError(
                "extra_filter must not filter lastUpdatedDate: iter_updated sets it per window"
            )
        encode_filter(extra, self._tz)  # validate now, not halfway through the walk
        url = self._collection_url(collection)
        end = until if until is not None else self._now()
        plan = WindowPlan.between(since, end, overlap=overlap, tz=self._tz, max_days=window_days)
        limit = min(chunk_size, self.settings.max_entities_per_response)
        # Aim below the limit: a part that comes back full is read again, halved.
        pacer = WindowPacer(target=max(1, limit * 4 // 5))

        def chunks() -> Iterator[WindowChunk]:
            for window in plan.windows():
                yield from self._read_window(url, collection, window, extra, limit, pacer, defer)

        return chunks()

    def _read_window(
        self,
        url: str,
        label: str,
        window: Window,
        extra: dict[str, Any],
        limit: int,
        pacer: WindowPacer,
        defer: Collection[str],
    ) -> Iterator[WindowChunk]:
        """Walk ``window`` in parts of fewer than ``limit`` records, each read whole."""
        start = window.start
        while start <= window.end:
            part = pacer.next_part(window, start)
            while True:
                params: dict[str, str | int] = {
                    "filter": self._window_filter(part, extra),
                    "limit": limit,
                }
                payload = self._read_collection(url, params, defer)
                count = payload_length(payload)
                if count < limit:
                    pacer.observe(part, count)
                    frame = to_frame(payload)
                    # Hold no records here while the next part is read: the caller has them.
                    del payload
                    yield WindowChunk(frame, part.start_utc, part.end_utc, last_in_window=True)
                    del frame
                    break
                del payload
                if part.single_second:
                    yield from self._page_full_second(url, label, part, params, limit, defer)
                    break
                # Full: the server may have cut it. Read its first half; the walk goes on
                # from the end of that half, so parts still advance in time order.
                self.stats.add(window_splits=1)
                log.info(
                    "%s window %s..%s came back full (%d records); splitting it",
                    label,
                    *part.filter_range(),
                    count,
                )
                part = part.split()[0]
            start = part.end + ONE_SECOND

    def _page_full_second(
        self,
        url: str,
        label: str,
        window: Window,
        params: dict[str, str | int],
        limit: int,
        defer: Collection[str],
    ) -> Iterator[WindowChunk]:
        """More records share one second than a response holds: page them with offset."""
        log.warning(
            "%s: at least %d records were updated within the second %s; paging it with offset",
            label,
            limit,
            window.filter_range()[0],
        )

        def fetch(page_limit: int, offset: int) -> Mapping[str, Any]:
            page = {**params, "limit": page_limit, "offset": offset}
            return self._read_collection(url, page, defer)

        pages = OffsetPaging(limit, label=f"{label} at {window.filter_range()[0]}").pages(fetch)
        # Look one page ahead so the last page's chunk carries last_in_window.
        held = next(pages, None)
        for page in pages:
            assert held is not None
            yield WindowChunk(to_frame(held), window.start_utc, window.end_utc, False)
            held = page
        frame = to_frame(held) if held is not None else pd.DataFrame()
        yield WindowChunk(frame, window.start_utc, window.end_utc, last_in_window=True)

    def _window_filter(self, window: Window, extra: dict[str, Any]) -> str:
        return encode_filter({"lastUpdatedDate": window.filter_range(), **extra}, self._tz)

    # -- single entities -----------------------------------------------------------------------

    def get(self, url_path: str) -> dict[str, Any]:
        """Read one entity by a URL taken from the data (``productUrl``, ``orderUrl``, ...).

        Never build entity URLs from ids: Finale's product URL is not always
        ``/product/{productId}``.

        Raises:
            InvalidRequestError: for a value that is not a Finale path on this origin.
            FatalError: 404 and other client errors.
        """
        data = self._transport.request("GET", self._transport.resolve(url_path), check=_object)
        return dict(data)

    # -- GraphQL -------------------------------------------------------------------------------

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, timeout: Timeout = None
    ) -> dict[str, Any]:
        """Run a GraphQL query and return its ``data``.

        Args:
            query: the GraphQL document.
            variables: its variables.
            timeout: seconds, overriding ``FINALE_TIMEOUT_SECONDS`` (some queries take minutes).

        Raises:
            FatalError: when the answer carries ``errors`` (Finale sends them with HTTP 200).
        """
        data = self._transport.request(
            "POST",
            f"{self._api}/graphql",
            body={"query": query, "variables": variables or {}},
            check=_graphql_ok,
            timeout=timeout,
        )
        result = data.get("data")
        if not isinstance(result, dict):
            raise FatalError("Finale's GraphQL answer has no 'data' object and no errors")
        return result

    def iter_graphql_connection(
        self,
        connection: str,
        node_fields: str,
        *,
        args: dict[str, Any] | None = None,
        page_size: int = 500,
        converters: Mapping[str, Converter] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Page through a Relay connection, yielding each page's nodes.

        Always passes ``formatter: "none"``; display placeholders ("--") still become None,
        and the ``converters`` (default: ``display.DEFAULT_CONVERTERS[connection]``) parse
        numbers and dates that arrive display-formatted anyway.

        Args:
            connection: e.g. ``"productViewConnection"``.
            node_fields: the selection inside ``node { ... }``, e.g. ``"productId cost"``.
            args: more connection arguments, e.g. ``{"type": ["PURCHASE_ORDER"]}``.
            page_size: ``first`` per request.
            converters: ``{"field" or "nested.field": parse_fn}``; ``{}`` for none.

        Raises:
            InvalidRequestError: at call time, for a bad name or argument.
            FatalError: while iterating, on GraphQL errors or a cursor that repeats.
        """
        if page_size < 1:
            raise InvalidRequestError(f"page_size must be at least 1, got {page_size}")
        query = connection_query(connection, node_fields, args)
        convert = DEFAULT_CONVERTERS.get(connection, {}) if converters is None else converters

        def pages() -> Iterator[list[dict[str, Any]]]:
            after: str | None = None
            seen: set[str] = set()
            while True:
                data = self.graphql(query, {"first": page_size, "after": after})
                page = ConnectionPage.from_data(data, connection)
                if page.nodes:
                    yield [apply_converters(node, convert) for node in page.nodes]
                if page.next_cursor is None:
                    return
                if page.next_cursor in seen:
                    raise FatalError(
                        f"{connection}: the cursor {page.next_cursor!r} came back twice, so the "
                        "server ignores 'after'; stopping instead of looping"
                    )
                seen.add(page.next_cursor)
                after = page.next_cursor

        return pages()

    # -- writes --------------------------------------------------------------------------------

    def create_order(self, order: dict[str, Any]) -> dict[str, Any]:
        """Create an order; returns it as stored (with ``orderUrl`` and action URLs).

        With a client-chosen ``orderId`` a lost answer is retried safely: a repeat is refused
        as a duplicate. Without one, a failure after the request may have reached Finale is
        not retried (it could create the order twice).

        Raises:
            DuplicateOrderError: the ``orderId`` is already in use (maybe by an earlier
                attempt whose answer was lost: treat as already created).
            FatalError: any other refusal, including a 200 with an error body.
        """
        order_id = order.get("orderId")
        try:
            return self._write(f"{self._api}/order", order, idempotent=bool(order_id))
        except FatalError as exc:
            if isinstance(exc, AuthError) or not is_duplicate_order_message(exc.server_message):
                raise
            raise DuplicateOrderError(
                f"Finale already has an order with orderId {order_id!r} ({exc.server_message}). "
                "If an earlier attempt of this create lost its answer, the order exists: read "
                "it and treat it as created",
                order_id=str(order_id) if order_id is not None else None,
                url=exc.url,
                status=exc.status,
                server_message=exc.server_message,
            ) from exc

    def update_order(self, order: dict[str, Any]) -> dict[str, Any]:
        """Replace an order: POST the whole object to its ``orderUrl`` (last write wins).

        Pass the full object as read from Finale with your changes applied; fields left out
        may be cleared. ``update_order_fields`` does the read for you.

        Raises:
            InvalidRequestError: when ``order`` has no ``orderUrl``.
            FatalError: for a completed or cancelled order (Finale refuses changes to them),
                or when Finale refuses the write.
        """
        url = order.get("orderUrl")
        if not url:
            raise InvalidRequestError(
                f"{describe(order)} has no orderUrl: update the object read from Finale, or "
                "use create_order for a new order"
            )
        if order.get("statusId") in FINAL_STATUSES:
            raise FatalError(
                f"{describe(order)} cannot be changed: Finale does not allow changes to "
                "completed or cancelled orders"
            )
        return self._write(self._transport.resolve(str(url)), order, idempotent=True)

    def update_order_fields(self, order_url: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Read the order at ``order_url``, apply ``changes`` (top-level fields), write it back.

        Raises:
            InvalidRequestError: when ``changes`` tries to move the order to another URL.
            FatalError: as ``update_order``.
        """
        if "orderUrl" in changes and changes["orderUrl"] != order_url:
            raise InvalidRequestError("changes must not alter orderUrl")
        current = self.get(order_url)
        merged = {**current, **changes}
        merged.setdefault("orderUrl", order_url)
        return self.update_order(merged)

    def order_action(self, order: dict[str, Any], action: OrderAction) -> dict[str, Any]:
        """Lock, complete or cancel an order through its ``actionUrl*`` link.

        Finale offers an action's URL only while the action is valid, so a missing URL means
        the order's status does not allow it. If Finale refuses the action but the order is
        already in the target status (an earlier attempt succeeded and its answer was lost),
        the current order is returned.

        Args:
            order: the order as read from Finale (needs ``actionUrlLock`` etc.).
            action: "lock", "complete" or "cancel" (cancel also cancels its shipments).

        Returns:
            The updated order.

        Raises:
            FatalError: when the action is not valid in the order's current status.
        """
        key = ACTION_URL_KEYS.get(action)
        if key is None:
            raise InvalidRequestError(f"action must be lock, complete or cancel, not {action!r}")
        url = order.get(key)
        if not url:
            raise FatalError(
                f"cannot {action} {describe(order)}: it has no {key}, so {action} is not valid "
                f"in the order's current status ({action} needs {ACTION_VALID_FROM[action]}). "
                "Re-read the order to see its current status"
            )
        try:
            return self._write(self._transport.resolve(str(url)), {}, idempotent=True)
        except FatalError as exc:
            if isinstance(exc, AuthError) or not order.get("orderUrl"):
                raise
            current = self.get(str(order["orderUrl"]))
            if current.get("statusId") != ACTION_TARGET_STATUS[action]:
                raise
            log.info("%s is already %s; nothing to do", describe(order), current["statusId"])
            return current

    def _write(self, url: str, body: Mapping[str, Any], *, idempotent: bool) -> dict[str, Any]:
        data = self._transport.request(
            "POST", url, body=body, check=check_write_body, idempotent=idempotent
        )
        return dict(data)

    # -- helpers -------------------------------------------------------------------------------

    def _collection_url(self, collection: str) -> str:
        name = collection.strip("/")
        if not _COLLECTION.match(name):
            raise InvalidRequestError(
                f"{collection!r} is not a Finale collection name (e.g. 'product', 'partygroup')"
            )
        # Trailing slash: some collections (inventoryitem) answer 404 without it.
        return f"{self._api}/{name}/"

    def _read_collection(
        self, url: str, params: dict[str, str | int], defer: Collection[str] = ()
    ) -> dict[str, Any]:
        decode = deferring_decoder(defer) if defer else None
        data = self._transport.request(
            "GET", url, params=params, check=_collection_body, decode=decode
        )
        return dict(data)


def _default_http(settings: FinaleSettings) -> httpx.Client:
    # A connection is made in milliseconds or not at all: a short connect timeout keeps an
    # unreachable Finale (a dropped SYN) within the unreachable budget.
    timeout = httpx.Timeout(settings.timeout_seconds, connect=min(settings.timeout_seconds, 5.0))
    return httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT}, verify=_tls_context())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings every client shares (httpx's defaults: certifi, SSL_CERT_FILE).

    Building them loads the CA bundle, ~50 ms; a run makes a client per entity and one to
    check Finale first, and an SSL context is safe to share between them and their threads.
    """
    return httpx.create_ssl_context()


def _collection_body(data: Any) -> None:
    if not isinstance(data, dict):
        raise FatalError(
            f"expected a column-major collection body (a JSON object), got a JSON "
            f"{type(data).__name__}"
        )
    payload_length(data)  # unequal arrays -> RetryableError, retried inside the attempt


def _object(data: Any) -> None:
    if not isinstance(data, dict):
        raise FatalError(f"expected one entity (a JSON object), got a JSON {type(data).__name__}")


def _graphql_ok(data: Any) -> None:
    if not isinstance(data, dict):
        raise FatalError(f"expected a GraphQL answer (a JSON object), got {type(data).__name__}")
    errors = data.get("errors")
    if errors:
        texts = [
            str(e.get("message", e)) if isinstance(e, dict) else str(e)
            for e in (errors if isinstance(errors, list) else [errors])
        ]
        message = "; ".join(texts[:5])
        raise FatalError(f"GraphQL query failed: {message}", server_message=message)
