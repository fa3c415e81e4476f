"""The Starlette ASGI app: Finale's REST and GraphQL API plus the ``/__sandbox__/`` control API.

Request pipeline for ``/{account}/api/...``: credentials (Basic, or a session cookie; an
expired session gets the HTML login page with status 200) -> rate limit (429) -> fault
injection -> session CSRF check on POSTs -> the handler. Every response after the credential
check carries ``X-RateLimit-*`` headers when rate limiting is on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sandbox import graphql, orders, wire
from sandbox.auth import LOGIN_PAGE, SessionStore, parse_basic
from sandbox.config import SandboxConfig
from sandbox.data import COLLECTIONS, ORDER_ACTIONS
from sandbox.faults import SLOW_SECONDS, FaultInjector, LostAnswers
from sandbox.ratelimit import RateLimiter
from sandbox.store import ApiError, SandboxStore

JSON = "application/json"
# Finale write endpoints the sandbox knows of but does not simulate (answered 405, not 404).
UNSUPPORTED_WRITES = frozenset({"inventoryvariance", "shipment", "inventorytransfer"})


class SandboxState:
    """Everything one sandbox server holds: data store, limiter, faults, sessions.

    Args:
        config: the sandbox options.
        clock: monotonic seconds for session expiry and rate-limit refills; tests hand in
            a fake clock to move time on without waiting.
    """

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.store = SandboxStore(config)
        self.limiter = RateLimiter(config.rate_limit_per_minute, clock)
        self.faults = FaultInjector(config.faults, config.fault_seed)
        self.lost_answers = LostAnswers()
        self.sessions = SessionStore(config.session_ttl_seconds, clock)
        self.stats = self.store.stats
        self.started = time.time()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire.dumps(body), status, headers=headers, media_type=JSON)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"errorMessage": message}, status, headers)


class DroppedResponse(Response):
    """Sends the headers (with the full Content-Length) and half the body, then stops.

    Returning without the final body message makes uvicorn close the connection, which the
    client sees as a connection dropped mid-response.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = max(1, len(self.body) // 2)
        await send({"type": "http.response.body", "body": self.body[:half], "more_body": True})


def create_app(config: SandboxConfig, *, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """Build the sandbox app for ``config``; its state is ``app.state.sandbox``.

    ``clock`` (monotonic seconds) drives session expiry and rate-limit refills.
    """
    state = SandboxState(config, clock)

    async def api(request: Request) -> Response:
        return await _api(state, request)

    async def control(request: Request) -> Response:
        return await _control(state, request)

    app = Starlette(
        routes=[
            Route("/__sandbox__/{op}", control, methods=["GET", "POST"]),
            Route("/{account}/api/{rest:path}", api, methods=["GET", "POST"]),
        ]
    )
    # Finale does not redirect between slash forms: /inventoryitem is a 404, not a redirect.
    app.router.redirect_slashes = False
    app.state.sandbox = state
    return app


# -- the Finale API --------------------------------------------------------------------------


async def _api(state: SandboxState, request: Request) -> Response:
    cfg = state.config
    stats = state.stats
    stats["requests.total"] += 1
    if request.path_params["account"] != cfg.account:
        return _count(state, _error(404, f"unknown account {request.path_params['account']!r}"))
    rest: str = request.path_params["rest"]
    if rest == "auth":
        return _count(state, await _login(state, request))

    token: str | None = None
    basic = parse_basic(request.headers.get("authorization"))
    if request.headers.get("authorization"):
        if basic != (cfg.api_key, cfg.api_secret):
            stats["unauthorized"] += 1
            return _count(state, _unauthorized("invalid API key or secret"))
        credential = f"key:{cfg.api_key}"
    elif (token := request.cookies.get("JSESSIONID")) is not None:
        session = state.sessions.lookup(token)
        if session is None:
            stats["login_pages"] += 1
            return _count(state, HTMLResponse(LOGIN_PAGE, 200))
        credential = f"user:{session.username}"
    else:
        stats["unauthorized"] += 1
        return _count(state, _unauthorized("authentication required"))

    headers, refused = _rate_limit(state, credential, request.method)
    if refused is not None:
        return _count(state, refused)

    fault = state.faults.draw()
    if fault is not None:
        stats[f"faults.{fault}"] += 1
        if fault == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        else:
            return _count(state, await _fault_response(state, request, fault, headers))

    try:
        if request.method == "GET":
            response = _get(state, request, rest, headers)
        else:
            body = await _body(request)
            if token is not None and (
                not isinstance(body, dict) or body.get("sessionSecret") != token
            ):
                raise ApiError(403, "sessionSecret is missing or does not match the session")
            written: list[str] = []
            response = _post(state, request, rest, body, headers, written)
            if written and _applied(response):
                how = state.lost_answers.take(written[0])
                if how is not None:
                    # The write is stored; only its answer goes missing.
                    stats[f"faults.lost_answer_{how}"] += 1
                    return _count(state, await _lose_answer(state, request, how, response))
    except ApiError as exc:
        response = _error(exc.status, exc.message, headers)
    return _count(state, response)


def _applied(response: Response) -> bool:
    """A 200 write answer without an error body: the write took effect."""
    if response.status_code != 200:
        return False
    try:
        body = orjson.loads(bytes(response.body))
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and not body.get("errorMessage")


async def _silence(state: SandboxState, request: Request) -> None:
    """Say nothing for ``fault_delay`` seconds, or until the client hangs up."""
    deadline = time.monotonic() + state.config.fault_delay
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            break
        await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


async def _lose_answer(
    state: SandboxState, request: Request, how: str, response: Response
) -> Response:
    """The answer to an applied write, lost: silence then 504, or dropped mid-body."""
    if how == "timeout":
        await _silence(state, request)
        return Response("Gateway Timeout", 504, media_type="text/plain")
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return DroppedResponse(bytes(response.body), 200, headers=headers, media_type=JSON)


def _count(state: SandboxState, response: Response) -> Response:
    state.stats[f"responses.{response.status_code}"] += 1
    return response


def _unauthorized(message: str) -> Response:
    return _error(401, message, {"WWW-Authenticate": 'Basic realm="Finale Inventory"'})


def _rate_limit(
    state: SandboxState, credential: str, method: str
) -> tuple[dict[str, str], Response | None]:
    decision = state.limiter.check(credential, method)
    if decision is None:
        return {}, None
    headers = decision.headers()
    if decision.allowed:
        return headers, None
    state.stats["rate_limited"] += 1
    return headers, _error(429, "Too many requests; slow down", headers)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the request body is not valid JSON") from None


async def _login(state: SandboxState, request: Request) -> Response:
    cfg = state.config
    if request.method != "POST":
        return _error(405, "use POST to sign in")
    try:
        body = await _body(request)
    except ApiError as exc:
        return _error(exc.status, exc.message)
    if not isinstance(body, dict) or (body.get("username"), body.get("password")) != (
        cfg.username,
        cfg.password,
    ):
        state.stats["unauthorized"] += 1
        return _error(401, "invalid username or password")
    headers, refused = _rate_limit(state, f"user:{cfg.username}", "POST")
    if refused is not None:
        return refused
    fault = state.faults.draw()
    if fault is not None:
        state.stats[f"faults.{fault}"] += 1
        if fault != "slow":
            return await _fault_response(state, request, fault, headers)
        await asyncio.sleep(SLOW_SECONDS)
    state.stats["requests.auth"] += 1
    token = state.sessions.create(cfg.username)
    api = f"/{cfg.account}/api"
    response = _json(
        {
            "sessionSecret": None,
            "resourceProduct": f"{api}/product",
            "resourceOrder": f"{api}/order",
            "resourceFacility": f"{api}/facility",
            "resourcePartyGroup": f"{api}/partygroup",
            "resourceInventoryItem": f"{api}/inventoryitem",
        },
        headers=headers,
    )
    response.set_cookie("JSESSIONID", token, path="/", httponly=True)
    return response


def _raw_path(request: Request) -> str:
    # Entity URLs are matched exactly as sent (percent-escapes included), never re-encoded.
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if raw else request.url.path


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, not {value!r}") from None
    if number < 0:
        raise ApiError(400, f"{name} must not be negative")
    return number


def _get(state: SandboxState, request: Request, rest: str, headers: dict[str, str]) -> Response:
    name, slash, tail = rest.partition("/")
    if name in COLLECTIONS and not tail:
        if name == "inventoryitem" and not slash:
            # Seen on Finale: the stock collection only answers with the trailing slash.
            raise ApiError(404, "not found: /inventoryitem needs a trailing slash")
        state.stats["requests.collection"] += 1
        body = state.store.read_collection(
            name,
            # Only filter, limit and offset mean something; any other parameter is ignored.
            filter_param=request.query_params.get("filter"),
            limit=_int_param(request, "limit"),
            offset=_int_param(request, "offset") or 0,
        )
        return Response(body, 200, headers=headers, media_type=JSON)
    found = state.store.find_entity(_raw_path(request))
    if found is None:
        raise ApiError(404, f"not found: {_raw_path(request)}")
    state.stats["requests.entity"] += 1
    table, row = found
    return _json(state.store.entity(table, row), headers=headers)


def _post(
    state: SandboxState,
    request: Request,
    rest: str,
    body: Any,
    headers: dict[str, str],
    written: list[str] | None = None,
) -> Response:
    """Serve a POST; an order write appends its kind (create, update, action) to ``written``."""
    store = state.store
    written = [] if written is None else written
    if rest == "graphql":
        state.stats["requests.graphql"] += 1
        if not isinstance(body, dict):
            raise ApiError(400, "the GraphQL request must be a JSON object")
        result = graphql.execute(
            store, body.get("query"), body.get("variables"), body.get("operationName")
        )
        return _json(result, headers=headers)
    if rest in ("order", "order/"):
        state.stats["requests.write"] += 1
        written.append("create")
        return _json(orders.create_order(store, body), headers=headers)
    path = _raw_path(request)
    found = store.find_entity(path)
    if found is not None and found[0].name == "order":
        state.stats["requests.write"] += 1
        written.append("update")
        return _json(orders.update_order(store, found[0], found[1], body), headers=headers)
    base, _, action = path.rpartition("/")
    if action in ORDER_ACTIONS:
        found = store.find_entity(base)
        if found is not None and found[0].name == "order":
            state.stats["requests.action"] += 1
            written.append("update" if action == "edit" else "action")
            table, row = found
            return _json(orders.order_action(store, table, row, action, body), headers=headers)
    target = rest.split("/", 1)[0]
    if (target in COLLECTIONS and target != "order") or target in UNSUPPORTED_WRITES:
        raise ApiError(405, f"the sandbox does not support POST {path}")
    raise ApiError(404, f"not found: {path}")


async def _fault_response(
    state: SandboxState, request: Request, fault: str, headers: dict[str, str]
) -> Response:
    if fault in ("500", "502", "503"):
        status = int(fault)
        text = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return Response(text[status], status, headers=headers, media_type="text/plain")
    if fault == "timeout":
        await _silence(state, request)
        return Response("Gateway Timeout", 504, headers=headers, media_type="text/plain")
    if fault == "html":
        return HTMLResponse(LOGIN_PAGE, 200, headers=headers)
    # drop / truncate: cut a real body for reads; writes are not applied, so any JSON will do.
    body = orjson.dumps({"errorMessage": None, "detail": "response interrupted" * 8})
    if request.method == "GET":
        try:
            body = bytes(_get(state, request, request.path_params["rest"], headers).body)
        except ApiError as exc:
            body = orjson.dumps({"errorMessage": exc.message})
    if fault == "drop":
        return DroppedResponse(body, 200, headers=headers, media_type=JSON)
    return Response(body[: max(1, len(body) // 2)], 200, headers=headers, media_type=JSON)


# -- the control API -------------------------------------------------------------------------


async def _control(state: SandboxState, request: Request) -> Response:
    op = request.path_params["op"]
    store = state.store
    try:
        if request.method == "GET":
            if op == "health":
                return _json({"ok": True})
            if op == "info":
                return _json(
                    {
                        **store.info(),
                        "rate_limit_per_minute": state.limiter.per_minute,
                        "faults": {
                            "spec": state.faults.spec,
                            "seed": state.faults.seed,
                            "lost_answers_armed": state.lost_answers.pending(),
                        },
                        "session_ttl_seconds": state.sessions.ttl,
                    }
                )
            if op == "stats":
                return _json(_stats(state))
            raise ApiError(404, f"unknown control GET {op!r}")
        raw = await request.body()
        if op == "records":
            return _json(_add_records(state, raw))
        # Decoded leniently, so ids beyond 64 bits (of injected records) can be deleted.
        try:
            body = wire.loads_lenient(raw) if raw.strip() else {}
        except wire.WireError as exc:
            raise ApiError(400, str(exc)) from None
        if not isinstance(body, dict):
            raise ApiError(400, "the control request body must be a JSON object")
        return _json(_control_post(state, op, body))
    except ApiError as exc:
        return _error(exc.status, exc.message)


def _arg(body: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in body or body[name] is None:
        if default is ...:
            raise ApiError(400, f"missing {name!r}")
        return default
    value = body[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError(400, f"{name!r} must be an integer")
    if kind is str and not isinstance(value, str):
        raise ApiError(400, f"{name!r} must be a string")
    if kind is list and not isinstance(value, list):
        raise ApiError(400, f"{name!r} must be a list")
    return value


def _control_post(state: SandboxState, op: str, body: dict[str, Any]) -> dict[str, Any]:
    store = state.store
    if op == "count":
        return {"count": store.count(_arg(body, "collection", str), body.get("filter"))}
    if op == "touch":
        ids = store.touch(
            _arg(body, "collection", str), _arg(body, "count", int), _arg(body, "seed", int, None)
        )
        return {"ids": ids}
    if op == "cancel-orders":
        return {"ids": store.cancel_orders(_arg(body, "count", int))}
    if op == "deactivate-products":
        return {"ids": store.deactivate_products(_arg(body, "count", int))}
    if op == "delete":
        return {"ids": store.delete(_arg(body, "collection", str), _arg(body, "ids", list))}
    if op == "stock":
        skus, urls = store.change_stock(_arg(body, "count", int))
        return {"ids": skus, "productUrls": urls}
    if op == "faults":
        spec, seed = _arg(body, "spec", str, ""), _arg(body, "seed", int, 0)
        try:
            state.faults.configure(spec, seed)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return {"spec": spec, "seed": seed}
    if op == "lose-answers":
        try:
            armed = state.lost_answers.arm(
                _arg(body, "count", int, 1),
                _arg(body, "how", str, "timeout"),
                _arg(body, "writes", str, "create"),
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return {"armed": armed}
    if op == "expire-sessions":
        return {"expired": state.sessions.expire_all()}
    if op == "rate-limit":
        per_minute = _arg(body, "per_minute", int)
        if per_minute < 0:
            raise ApiError(400, "'per_minute' must be >= 0 (0 = off)")
        state.limiter = RateLimiter(per_minute, state.clock)
        return {"per_minute": per_minute}
    raise ApiError(404, f"unknown control operation {op!r}")


def _add_records(state: SandboxState, raw: bytes) -> dict[str, Any]:
    # Decoded leniently (integers beyond 64 bits survive), then checked against the response
    # encoder, so a record that is accepted can always be served.
    try:
        body = wire.loads_lenient(raw)
    except wire.WireError as exc:
        raise ApiError(400, str(exc)) from None
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be {"collection": ..., "records": [{...}, ...]}')
    collection = _arg(body, "collection", str)
    if collection not in COLLECTIONS:
        raise ApiError(400, f"unknown collection {collection!r}; one of {', '.join(COLLECTIONS)}")
    records = _arg(body, "records", list)
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise ApiError(400, f"records[{bad}] is not a JSON object; each record is a row object")
    try:
        wire.check_servable(records)
    except wire.WireError as exc:
        raise ApiError(400, str(exc)) from None
    return {"added": state.store.add_records(collection, records)}


def _stats(state: SandboxState) -> dict[str, Any]:
    grouped: dict[str, Any] = {"requests": {}, "responses": {}, "faults": {}}
    for key, value in sorted(state.stats.items()):
        group, _, name = key.partition(".")
        if name and group in grouped:
            grouped[group][name] = value
        else:
            grouped[key] = value
    grouped.setdefault("rate_limited", 0)
    grouped.setdefault("login_pages", 0)
    grouped.setdefault("unauthorized", 0)
    grouped["cache"] = state.store.cache.stats()
    grouped["uptime_seconds"] = round(time.time() - state.started, 3)
    return grouped
