"""Every sandbox fault kind, survived with exactly the right data.

The fault draws are seeded, so each case meets the same faults on every run. The sandbox
counts what it injected; the client's stats must show it recovered from each one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from finale_sandbox_support import SANDBOX_DEFAULTS, Connect, frame_records, keys_of, server_rows

from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread

FAULT_DELAY = 1.5  # a `timeout` fault stays silent this long ...
CLIENT_TIMEOUT = 0.4  # ... and the client gives up on it sooner
SLOW_SECONDS = 0.5  # a `slow` fault answers after this long (sandbox.faults.SLOW_SECONDS)
PAGE_SIZE = 25  # 300 products: 13 GETs per read, so a rate of 0.3 hits several times


@pytest.fixture(scope="module")
def fault_sandbox() -> Iterator[SandboxHandle]:
    """A sandbox whose data never changes; each test sets (and clears) its own faults."""
    config = SandboxConfig(**{**SANDBOX_DEFAULTS, "fault_delay": FAULT_DELAY})
    with start_in_thread(config) as handle:
        yield handle


@pytest.fixture
def fault_control(fault_sandbox: SandboxHandle) -> Iterator[SandboxControl]:
    with SandboxControl(fault_sandbox.base_url) as control:
        control.set_faults("")
        yield control
        control.set_faults("")


@pytest.mark.parametrize(
    ("spec", "auth", "timeout"),
    [
        pytest.param("500:0.3", "basic", 5.0, id="500"),
        pytest.param("502:0.3", "basic", 5.0, id="502"),
        pytest.param("503:0.3", "basic", 5.0, id="503"),
        pytest.param("timeout:0.25", "basic", CLIENT_TIMEOUT, id="timeout"),
        pytest.param("drop:0.3", "basic", 5.0, id="drop"),
        pytest.param("truncate:0.3", "basic", 5.0, id="truncate"),
        pytest.param("html:0.3", "basic", 5.0, id="html"),
        pytest.param("html:0.3", "session", 5.0, id="html-session"),
        pytest.param("slow:0.3", "basic", 5.0, id="slow"),
        pytest.param(
            "500:0.04,502:0.04,503:0.04,timeout:0.04,drop:0.04,truncate:0.04,html:0.04,slow:0.04",
            "session",
            CLIENT_TIMEOUT + SLOW_SECONDS,
            id="all-kinds-session",
        ),
    ],
)
def test_full_read_survives_faults_with_exact_data(
    fault_sandbox: SandboxHandle,
    fault_control: SandboxControl,
    connect: Connect,
    spec: str,
    auth: str,
    timeout: float,
) -> None:
    truth = server_rows(fault_sandbox, "product")
    conn = connect(fault_sandbox, auth=auth, timeout=timeout, max_retries=8)
    before = fault_control.stats()["faults"]
    fault_control.set_faults(spec, seed=3)

    records = frame_records(conn.client.iter_collection("product", page_size=PAGE_SIZE))

    injected = {
        kind: count - before.get(kind, 0)
        for kind, count in fault_control.stats()["faults"].items()
        if count > before.get(kind, 0)
    }
    hits = sum(injected.values())
    assert hits >= 3, f"the faults should hit several times, got {injected}"
    assert keys_of("product", records) == keys_of("product", truth)
    assert records == truth
    stats = conn.client.stats
    # A slow answer is a correct answer: waited for, not retried. Every other fault costs
    # one retry, or (an HTML page on a session) one login and an immediate repeat.
    slow = injected.get("slow", 0)
    if auth == "basic":
        assert stats.retries == hits - slow
    else:
        assert stats.retries + stats.relogins == hits - slow
    if spec.startswith("slow"):
        assert stats.retries == 0
        slow_answers = [e for e in conn.log.exchanges if e.answered - e.sent >= SLOW_SECONDS]
        assert len(slow_answers) == slow
    if spec.startswith("html") and auth == "session":
        # A login page on a request means "log in again"; on the login itself, "retry".
        assert stats.relogins >= 1
    assert stats.requests == len(conn.log.exchanges)
