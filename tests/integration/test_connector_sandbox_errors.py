"""Fatal errors from the sandbox: the message names what to fix and holds no secret."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import pytest
from finale_sandbox_support import API_SECRET, PASSWORD, Connect

from connectors.finale import FatalError, FinaleClient, RetryableError
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle


def _read(collection: str, **options) -> Callable[[FinaleClient], object]:
    return lambda client: list(client.iter_collection(collection, **options))


def _filter_on_own_secret(client: FinaleClient) -> object:
    # The server echoes an unknown field's name; here the name is the client's own secret.
    settings = client.settings
    secret = settings.api_secret or settings.password
    assert secret is not None
    return list(client.iter_collection("product", filter={secret.get_secret_value(): "x"}))


CASES = [
    pytest.param(
        lambda client: client.get("/acme/api/product/NO-SUCH-PRODUCT"),
        404,
        ["FINALE_ACCOUNT", "must come from the data"],
        id="404-entity-url",
    ),
    pytest.param(_read("supplier"), 404, ["collection name", "partygroup"], id="404-collection"),
    pytest.param(
        _read("inventoryitem", filter={"productUrl": "X"}),
        400,
        ["cannot be filtered", "Retrying will not help"],
        id="400-filter-unfilterable",
    ),
    pytest.param(
        _read("product", filter={"lastUpdatedDate": [datetime.now(UTC) - timedelta(90), None]}),
        400,
        ["30 days"],
        id="400-window-too-wide",
    ),
    pytest.param(
        _filter_on_own_secret,
        400,
        ["unknown field '***'", "fix the request"],  # echoed, then masked
        id="400-server-echoes-a-secret",
    ),
]


@pytest.mark.parametrize("auth", ["basic", "session"])
@pytest.mark.parametrize(("call", "status", "names"), CASES)
def test_fatal_error_names_the_fix_and_holds_no_secret(
    shared_sandbox: SandboxHandle,
    shared_control: SandboxControl,
    connect: Connect,
    auth: str,
    call: Callable[[FinaleClient], object],
    status: int,
    names: list[str],
) -> None:
    conn = connect(shared_sandbox, auth=auth)
    before = shared_control.stats()["responses"].get(str(status), 0)

    with pytest.raises(FatalError) as caught:
        call(conn.client)

    error = caught.value
    assert not isinstance(error, RetryableError)
    assert error.status == status
    text = str(error)
    for name in names:
        assert name in text
    session_ids = {
        SimpleCookie(e.cookies)["JSESSIONID"].value for e in conn.log.exchanges if e.cookies
    }
    assert (auth == "session") == bool(session_ids)
    for secret in (API_SECRET, PASSWORD, *session_ids):
        for shown in (text, repr(error), error.url or "", error.body or ""):
            assert secret not in shown
        assert secret not in (error.server_message or "")
    # Fatal means sent once: no retry, exactly one refusal on the server.
    assert conn.client.stats.retries == 0
    assert shared_control.stats()["responses"].get(str(status), 0) - before == 1


def test_wrong_account_names_finale_account(
    shared_sandbox: SandboxHandle, connect: Connect
) -> None:
    conn = connect(shared_sandbox, account="not-acme")

    with pytest.raises(FatalError) as caught:
        list(conn.client.iter_collection("product"))

    assert caught.value.status == 404
    assert "FINALE_ACCOUNT" in str(caught.value)
    assert API_SECRET not in str(caught.value)
    assert conn.log.exchanges[0].path == "/not-acme/api/product/"
