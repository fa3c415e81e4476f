"""The signature: what ``sign`` produces, what ``verify`` accepts, and the snippet of
docs/events.md (run as a receiver would copy it) against a real delivery."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest
from event_receivers import Receiver, add_events, subscriber

from events.delivery import deliver
from events.signing import delivery_headers, sign, verify
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
SECRET = "whsec_test_0123456789"
BODY = b'{"id":"e1","type":"sync.completed"}'


def test_the_signature_is_an_hmac_of_timestamp_and_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, 1700000000) == f"t=1700000000,v1={expected}"
    headers = delivery_headers(SECRET, BODY, "e1", 1700000000)
    assert headers["Idempotency-Key"] == "e1"
    assert headers["Content-Type"] == "application/json"
    assert headers["Invsync-Signature"] == sign(SECRET, BODY, 1700000000)


@pytest.mark.parametrize(
    ("header", "body", "secret", "now", "ok"),
    [
        pytest.param(sign(SECRET, BODY, 1000), BODY, SECRET, 1000, True, id="valid"),
        pytest.param(sign(SECRET, BODY, 1000), BODY, SECRET, 1299, True, id="within-tolerance"),
        pytest.param(sign(SECRET, BODY, 1000), BODY, SECRET, 1301, False, id="too-old"),
        pytest.param(sign(SECRET, BODY, 1000), BODY, "other", 1000, False, id="wrong-secret"),
        pytest.param(sign(SECRET, BODY, 1000), BODY + b" ", SECRET, 1000, False, id="body-changed"),
        pytest.param(
            sign(SECRET, BODY, 1000).replace("t=1000", "t=1001"), BODY, SECRET, 1000, False,
            id="timestamp-changed",
        ),
        pytest.param(
            sign("old", BODY, 1000) + "," + sign(SECRET, BODY, 1000).split(",")[1], BODY, SECRET,
            1000, True, id="rotation-any-v1",
        ),
        pytest.param("", BODY, SECRET, 1000, False, id="empty"),
        pytest.param("t=abc,v1=00", BODY, SECRET, 1000, False, id="bad-timestamp"),
        pytest.param("garbage", BODY, SECRET, 1000, False, id="garbage"),
        pytest.param("t=1000", BODY, SECRET, 1000, False, id="no-signature"),
    ],
)  # fmt: skip
def test_verify(header: str, body: bytes, secret: str, now: float, ok: bool) -> None:
    assert verify(secret, header, body, tolerance=300, now=now) is ok


def _docs_snippet() -> dict[str, Any]:
    text = DOCS.read_text()
    marker = text.index("<!-- verify-snippet")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert code is not None, "docs/events.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOCS), "exec"), namespace)
    return namespace


def test_the_documented_snippet_verifies_a_real_delivery(tmp_path: Path) -> None:
    namespace = _docs_snippet()
    documented = namespace["verify"]
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    engine = create_warehouse_engine(url)
    try:
        with Receiver("r", SECRET) as r:
            sub = subscriber("r", r.url, SECRET)
            deliver(engine, [sub])
            add_events(engine, ["PO-1"])
            deliver(engine, [sub])
            (received,) = r.requests
    finally:
        engine.dispose()
    assert documented(SECRET, received.signature, received.body)
    assert not documented("wrong", received.signature, received.body)
    assert not documented(SECRET, received.signature, received.body.replace(b"PO-1", b"PO-2"))
    assert set(namespace) >= {"hashlib", "hmac", "time", "verify"}  # stdlib only


def test_the_snippet_is_the_library_function() -> None:
    import inspect

    from events import signing

    def body(source: str) -> list[str]:
        lines = [line.strip() for line in source.splitlines()]
        start = next(i for i, line in enumerate(lines) if line.startswith("try:"))
        return [line for line in lines[start:] if line]

    text = DOCS.read_text()
    marker = text.index("<!-- verify-snippet")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert code is not None
    assert body(code.group(1)) == body(inspect.getsource(signing.verify))
