"""Sends one logical request to Finale: throttle, authenticate, send, classify, parse, retry.

This is the only module that touches ``httpx``. Everything above it deals in parsed JSON and
in the errors of ``errors.py``; every error leaving it has been scrubbed of secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import orjson

from connectors.finale.auth import Authenticator, Credentials
from connectors.finale.errors import (
    FatalError,
    FinaleError,
    InvalidRequestError,
    RetryableError,
    SessionExpired,
    UnreachableError,
    error_for_status,
    server_message_of,
)
from connectors.finale.ratelimit import RateLimiter
from connectors.finale.stats import ClientStats
from connectors.finale.timestamps import to_wire
from connectors.redact import Redactor
from connectors.retry import Retrier, RetryPolicy, TransientError, parse_retry_after

log = logging.getLogger(__name__)

#: Collection bodies are large (about 0.6 KB per product) and arrive by the tens of MB:
#: msgspec builds the same plain dicts, lists and scalars ~20% faster than orjson here.
_decode_json = msgspec.json.Decoder().decode

_UNDECODABLE = object()


def _decode_lenient(body: bytes) -> Any:
    """``body`` parsed by the standard library, or ``_UNDECODABLE``.

    msgspec refuses some valid JSON that Finale may send in one odd record: a number beyond
    a float (``1e400``) and a lone UTF-16 surrogate escape (``"\\ud800"``). The standard
    parser takes them (as ``inf`` and a str holding the surrogate), so that record can be
    quarantined with a reason instead of the whole page failing. Truly broken bodies
    (truncated, not JSON) still fail here.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _UNDECODABLE


Check = Callable[[Any], None]
"""Validates a parsed body inside the retried attempt; raises a FinaleError to reject it."""
Timeout = float | httpx.Timeout | None

# Failures where the request certainly never reached the server: safe to repeat any write.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures that are our own bug or configuration: retrying cannot help.
_OUR_FAULT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.TooManyRedirects)


class Transport:
    """Request/response plumbing shared by every ``FinaleClient`` operation.

    Args:
        http: the ``httpx.Client`` to send with (owned by the caller).
        base_url: scheme and host every path from the data is joined to.
        tz: the account time zone, to render datetimes in request bodies.
        auth: the authenticator (Basic or session).
        limiter: the rate limiter.
        policy: the retry budget.
        sleep: blocking sleep for backoff (injectable for tests).
        stats: counters to update.
        redactor: masks secrets in every error.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        tz: tzinfo,
        auth: Authenticator,
        limiter: RateLimiter,
        policy: RetryPolicy,
        sleep: Callable[[float], None],
        stats: ClientStats,
        redactor: Redactor,
    ) -> None:
        """Wire the pieces together; nothing is sent yet."""
        self._http = http
        self._base = base_url.rstrip("/")
        self._origin = _origin(self._base)
        self._tz = tz
        self._auth = auth
        self._limiter = limiter
        self._stats = stats
        self._redactor = redactor
        self._retrier = Retrier(
            policy, sleep=sleep, on_retry=self._count_retry, system="Finale", logger=log
        )

    # -- public --------------------------------------------------------------------------------

    def resolve(self, path_or_url: str) -> str:
        """Turn a path from the data (``/acme/api/order/1``) into a full URL.

        Absolute URLs are accepted only on Finale's own origin, so credentials are never
        sent to another host because of a value in the data.

        Raises:
            InvalidRequestError: for anything else.
        """
        if path_or_url.startswith("/"):
            return self._base + path_or_url
        if path_or_url.startswith(("http://", "https://")):
            if _origin(path_or_url) != self._origin:
                raise InvalidRequestError(
                    f"refusing to send Finale credentials to {_origin(path_or_url)}: URLs "
                    f"must be on {self._origin} (FINALE_BASE_URL)"
                )
            return path_or_url
        raise InvalidRequestError(
            f"expected a Finale URL path such as '/acme/api/order/10012' taken from the data, "
            f"got {path_or_url[:80]!r}"
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        check: Check | None = None,
        idempotent: bool = True,
        timeout: Timeout = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """Send a request with throttling, auth, retries; return the parsed JSON body.

        Args:
            method: "GET" or "POST". Every POST carries a JSON body (``{}`` if none).
            url: full URL (see ``resolve``).
            params: query parameters.
            body: JSON body; datetimes are rendered as Finale timestamps.
            check: validates the parsed body inside the attempt, so a corrupt body is
                retried like any transient failure.
            idempotent: False for writes that must not be applied twice (see ``Retrier``).
            timeout: overrides the client's timeout for this request.
            decode: parses the body instead of plain JSON decoding (must raise
                ``msgspec.DecodeError`` for a body that is not JSON).

        Raises:
            RetryableError: a transient failure outlived the retry budget.
            FatalError: a failure retrying cannot fix (AuthError for credentials).
        """
        renew = [True]  # the one immediate re-login this request may do

        def attempt() -> Any:
            try:
                return self._attempt(method, url, params, body, check, decode, timeout, renew)
            except FinaleError as exc:
                self._scrub(exc)
                raise

        return self._retrier.run(attempt, idempotent=idempotent)

    # -- one attempt ---------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        check: Check | None,
        decode: Callable[[bytes], Any] | None,
        timeout: Timeout,
        renew: list[bool],
    ) -> Any:
        credentials = self._credentials()
        try:
            return self._exchange(
                method, url, params, body, check, decode, timeout, credentials, False
            )
        except SessionExpired:
            self._auth.invalidate(credentials)
            if not (self._auth.renews_session and renew[0]):
                raise
        # The session expired: log in again once and repeat at once. A second expiry right
        # after a fresh login is not an expiry any more (401 -> AuthError, HTML -> retried).
        renew[0] = False
        self._stats.add(relogins=1)
        log.info("Finale session expired; logging in again")
        credentials = self._credentials()
        return self._exchange(method, url, params, body, check, decode, timeout, credentials, True)

    def _credentials(self) -> Credentials:
        credentials = self._auth.credentials(self._login)
        self._redactor.add(credentials.session_id)
        self._redactor.add(credentials.session_secret)
        return credentials

    def _login(self, url: str, body: dict[str, Any]) -> httpx.Response:
        """One login POST, rate limited and classified; returns the 2xx response."""
        content = orjson.dumps(body)
        response = self._send("POST", url, None, content, None, None)
        masked = self._redactor.url(url)
        if not response.is_success:
            raise self._status_error(response, masked, fresh_login=True)
        return response

    def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        check: Check | None,
        decode: Callable[[bytes], Any] | None,
        timeout: Timeout,
        credentials: Credentials,
        fresh_login: bool,
    ) -> Any:
        content: bytes | None = None
        if method.upper() == "POST":
            content = self._encode(credentials.sign(dict(body or {})))
        response = self._send(method, url, params, content, credentials, timeout)
        masked = self._redactor.url(str(response.request.url))
        data = self._interpret(response, masked, fresh_login, decode or _decode_json)
        if check is not None:
            try:
                check(data)
            except FinaleError as exc:
                exc.url = exc.url or masked
                exc.status = exc.status if exc.status is not None else response.status_code
                raise
        return data

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None,
        content: bytes | None,
        credentials: Credentials | None,
        timeout: Timeout,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if credentials is not None:
            headers.update(credentials.headers())
        waited = self._limiter.acquire(method)
        if waited > 0:
            self._stats.add(rate_limit_waits=1, rate_limit_wait_seconds=waited)
        request = self._http.build_request(
            method,
            url,
            params=dict(params) if params else None,
            content=content,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        self._stats.add(requests=1, bytes_sent=len(content or b""))
        try:
            streamed = self._http.send(
                request,
                auth=credentials.httpx_auth if credentials is not None else None,
                follow_redirects=False,
                stream=True,
            )
            try:
                response = _detached(streamed)
            finally:
                streamed.close()
        except _OUR_FAULT as exc:
            raise FatalError(
                f"cannot send the request ({type(exc).__name__}: {exc}); check FINALE_BASE_URL",
                url=self._redactor.url(url),
            ) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UnreachableError(
                f"cannot reach Finale at {self._origin} ({type(exc).__name__}: {exc}); check "
                "FINALE_BASE_URL and the network",
                url=self._redactor.url(url),
                maybe_processed=False,
            ) from exc
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Finale did not answer in time ({type(exc).__name__}); retrying. If this "
                "keeps happening, raise FINALE_TIMEOUT_SECONDS",
                url=self._redactor.url(url),
                maybe_processed=not isinstance(exc, _NOT_SENT),
            ) from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise RetryableError(
                f"connection to Finale failed or was dropped ({type(exc).__name__}: {exc}); "
                "retrying. If it never connects, check FINALE_BASE_URL and the network",
                url=self._redactor.url(url),
                maybe_processed=not isinstance(exc, _NOT_SENT),
            ) from exc
        self._stats.add(bytes_received=len(response.content))
        pause = self._limiter.observe(method, response.status_code, response.headers)
        if pause is not None:
            self._stats.add(server_pauses=1)
        return response

    # -- classification ------------------------------------------------------------------------

    def _interpret(
        self,
        response: httpx.Response,
        masked_url: str,
        fresh_login: bool,
        decode: Callable[[bytes], Any],
    ) -> Any:
        """Raise the error a response means, or return its parsed JSON body."""
        content_type = response.headers.get("content-type", "").lower()
        if response.is_redirect and "login" in response.headers.get("location", "").lower():
            raise self._expired(response, masked_url)
        if not response.is_success:
            raise self._status_error(response, masked_url, fresh_login)
        if "text/html" in content_type:
            raise self._expired(response, masked_url)
        try:
            return decode(response.content)
        except msgspec.DecodeError as exc:
            lenient = _decode_lenient(response.content)
            if lenient is not _UNDECODABLE:
                return lenient
            raise RetryableError(
                f"Finale's answer is not valid JSON ({len(response.content)} bytes; truncated "
                f"or corrupt: {exc}); retrying",
                url=masked_url,
                status=response.status_code,
                body=self._redactor.body(response.content[-200:]),
            ) from exc

    def _status_error(
        self, response: httpx.Response, masked_url: str, fresh_login: bool
    ) -> FinaleError:
        status = response.status_code
        if status in (401, 403) and self._auth.renews_session and not fresh_login:
            # With a session, 401/403 may only mean the session died: renew once first.
            return self._expired(response, masked_url)
        message = server_message_of(response.content)
        error = error_for_status(
            status,
            url=masked_url,
            body=self._redactor.body(response.content),
            server_message=self._redactor.text(message) if message else None,
            auth_kind=self._auth.kind,
            retry_after=parse_retry_after(
                response.headers.get("retry-after"), now=self._limiter.wall_clock()
            ),
        )
        if error is None:  # pragma: no cover - only called for non-2xx
            raise AssertionError(f"status {status} is not an error")
        return error

    def _expired(self, response: httpx.Response, masked_url: str) -> SessionExpired:
        what = (
            "the session expired; logging in again"
            if self._auth.renews_session
            else "retrying; if it persists, check FINALE_BASE_URL and FINALE_ACCOUNT"
        )
        return SessionExpired(
            f"Finale answered with its login page (HTML) instead of JSON: {what}",
            url=masked_url,
            status=response.status_code,
            body=self._redactor.body(response.content, limit=200),
        )

    # -- helpers -------------------------------------------------------------------------------

    def _encode(self, body: Mapping[str, Any]) -> bytes:
        try:
            return orjson.dumps(to_wire(dict(body), self._tz))
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"cannot encode the request body as JSON: {exc}") from exc

    def _count_retry(self, error: TransientError, delay: float) -> None:
        self._stats.add(retries=1, retry_wait_seconds=delay)

    def _scrub(self, exc: FinaleError) -> None:
        """Mask secrets in every text field of an error before it leaves the connector."""
        exc.message = self._redactor.text(exc.message)
        if exc.url:
            exc.url = self._redactor.url(exc.url)
        if exc.body:
            exc.body = self._redactor.text(exc.body)
        if exc.server_message:
            exc.server_message = self._redactor.text(exc.server_message)
        exc.args = (exc.message,)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}".lower()


def _detached(streamed: httpx.Response) -> httpx.Response:
    """A copy of a sent response, read, that holds no reference cycle.

    httpx links a response it sends and that response's stream both ways (to time it), so
    a page's body would be freed only by the cyclic garbage collector; the copy goes as
    soon as it is dropped. Its body is decoded already, so it carries no content-encoding.
    """
    # Read already when an auth flow or a test's transport read it.
    read = streamed.is_stream_consumed
    body = streamed.content if read else b"".join(streamed.iter_bytes())
    headers = httpx.Headers(streamed.headers)
    headers.pop("content-encoding", None)
    return httpx.Response(
        streamed.status_code, headers=headers, content=body, request=streamed.request
    )
