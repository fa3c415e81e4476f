"""The rate limit against the sandbox's token buckets, measured on the wire.

Send times come from the ``httpx`` request hook (``RequestLog``), 429s and ``Retry-After``
from the response headers, and the sandbox's own counters say whether it had to refuse.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from finale_sandbox_support import Connect, frame_records, server_rows

from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle

TOLERANCE = 0.05  # seconds of clock and scheduling slack


def test_client_limit_spaces_requests_and_the_server_never_refuses(
    make_sandbox, connect: Connect
) -> None:
    rate = 120.0  # per minute, on both sides: one request every 0.5 s
    handle: SandboxHandle = make_sandbox(rate_limit_per_minute=int(rate))
    truth = server_rows(handle, "facility")  # 22 facilities: 6 pages of 4
    conn = connect(handle, rate_limit_per_minute=rate)

    records = frame_records(conn.client.iter_collection("facility", page_size=4))

    assert records == truth
    sent = [e.sent for e in conn.log.exchanges]
    assert len(sent) == 6
    minimum = (len(sent) - 1) * 60.0 / rate
    assert minimum - TOLERANCE <= sent[-1] - sent[0] < 2 * minimum
    assert all(b - a >= 60.0 / rate - TOLERANCE for a, b in itertools.pairwise(sent))
    assert [e.status for e in conn.log.exchanges] == [200] * 6
    assert all(e.headers["x-ratelimit-limit"] == "120" for e in conn.log.exchanges)
    with SandboxControl(handle.base_url) as control:
        assert control.stats()["rate_limited"] == 0
    assert conn.client.stats.rate_limit_waits == 5


@contextmanager
def _other_consumer(handle: SandboxHandle, stop_when: threading.Event) -> Iterator[None]:
    """Another user of the same credentials taking every token the bucket refills, from the
    moment the bucket is empty until ``stop_when`` is set (at most 10 s)."""
    empty = threading.Event()
    done = threading.Event()
    cfg = handle.config

    def drain() -> None:
        with httpx.Client(base_url=handle.api_url, auth=(cfg.api_key, cfg.api_secret)) as http:
            deadline = time.monotonic() + 10.0
            while not (stop_when.is_set() or done.is_set()) and time.monotonic() < deadline:
                if http.get("/facility/", params={"limit": 1}).status_code == 429:
                    empty.set()

    thread = threading.Thread(target=drain, name="other-consumer", daemon=True)
    thread.start()
    assert empty.wait(10.0), "the sandbox bucket never ran empty"
    try:
        yield
    finally:
        done.set()
        thread.join(5.0)


def test_client_limit_above_the_server_limit_meets_429s_and_honours_retry_after(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox(rate_limit_per_minute=60)
    truth = server_rows(handle, "facility")
    conn = connect(handle, rate_limit_per_minute=6000.0, max_retries=10)
    seen_two_429s = threading.Event()
    conn.log.watch(lambda log: log.statuses().count(429) >= 2 and seen_two_429s.set())
    with _other_consumer(handle, stop_when=seen_two_429s):
        records = frame_records(conn.client.iter_collection("facility", page_size=8))

    assert records == truth
    exchanges = conn.log.exchanges
    refused = [i for i, e in enumerate(exchanges) if e.status == 429]
    assert len(refused) >= 2
    for i in refused:
        wait = int(exchanges[i].headers["retry-after"])
        assert wait >= 1
        answered = exchanges[i].answered
        assert answered is not None
        assert exchanges[i + 1].sent - answered >= wait - TOLERANCE, "Retry-After not honoured"
        assert exchanges[i + 1].url == exchanges[i].url  # the same page, asked again
    assert conn.client.stats.retries == len(refused)
    assert conn.client.stats.server_pauses >= len(refused)
    assert [e.status for e in exchanges].count(200) == 3  # 22 facilities in pages of 8
