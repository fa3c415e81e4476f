"""Rate limiting (429, Retry-After, X-RateLimit-*) and every injectable fault."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from sandbox_helpers import FakeClock, api_client, plain_post

from sandbox.control import SandboxControl
from sandbox.faults import parse_fault_spec
from sandbox.server import SandboxHandle


def test_rate_limit_headers_on_every_api_response(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    with api_client(make_sandbox(rate_limit_per_minute=60)) as client:
        first = client.get("/facility/")
        second = client.get("/product/NO-SUCH")
        assert first.headers["X-RateLimit-Limit"] == "60"
        assert int(first.headers["X-RateLimit-Remaining"]) == 59
        assert int(second.headers["X-RateLimit-Remaining"]) == 58  # 404s count too
        assert second.headers["X-RateLimit-Reset"] == "0"


def test_overrun_gets_429_with_integer_retry_after_and_post_bucket_is_separate(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    # The clock stands still: no token comes back between the requests.
    handle = make_sandbox(rate_limit_per_minute=3, clock=FakeClock())
    with api_client(handle) as client:
        statuses = [client.get("/facility/").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("/facility/")
        assert refused.status_code == 429
        # 3 a minute refill one token in 20 s.
        assert refused.headers["Retry-After"] == "20"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.headers["X-RateLimit-Reset"] == "20"
        query = {"query": "{ partyViewConnection(first: 1) { edges { cursor } } }"}
        assert client.post("/graphql", json=query).status_code == 200
    with SandboxControl(handle.base_url) as control:
        assert control.stats()["rate_limited"] == 2


def test_an_exhausted_bucket_refills_at_the_per_minute_rate(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    clock = FakeClock()
    handle = make_sandbox(rate_limit_per_minute=2, clock=clock)
    with api_client(handle) as client:
        assert [client.get("/facility/").status_code for _ in range(3)] == [200, 200, 429]
        clock.advance(29)  # 2 a minute: one token every 30 s
        refused = client.get("/facility/")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        clock.advance(1)
        assert client.get("/facility/").status_code == 200
        clock.advance(600)  # a long pause refills the bucket to its size, no further
        statuses = [client.get("/facility/") for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[0].headers["X-RateLimit-Remaining"] == "1"


def test_a_limit_set_at_runtime_runs_on_the_sandbox_clock(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    clock = FakeClock()
    handle = make_sandbox(clock=clock)
    with api_client(handle) as client, SandboxControl(handle.base_url) as control:
        control.set_rate_limit(1)
        assert [client.get("/facility/").status_code for _ in range(2)] == [200, 429]
        clock.advance(60)
        assert client.get("/facility/").status_code == 200


def test_rate_limit_can_be_changed_and_turned_off_at_runtime(private: SandboxHandle) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        assert "X-RateLimit-Limit" not in client.get("/facility/").headers
        control.set_rate_limit(1)
        assert client.get("/facility/").status_code == 200
        assert client.get("/facility/").status_code == 429
        control.set_rate_limit(0)
        assert client.get("/facility/").status_code == 200


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_status_faults(private: SandboxHandle, kind: str) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        control.set_faults(f"{kind}:1")
        assert client.get("/product/").status_code == int(kind)
        control.set_faults("")
        assert client.get("/product/").status_code == 200
        assert control.stats()["faults"] == {kind: 1}


def test_timeout_fault_stays_silent(make_sandbox: Callable[..., SandboxHandle]) -> None:
    handle = make_sandbox(faults="timeout:1", fault_delay=3.0)
    with api_client(handle, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/facility/")


def test_drop_fault_closes_the_connection_mid_body(private: SandboxHandle) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        control.set_faults("drop:1")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/product/")


def test_truncate_fault_gives_200_with_cut_json(private: SandboxHandle) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        full = client.get("/product/").content
        control.set_faults("truncate:1")
        response = client.get("/product/")
        assert response.status_code == 200
        assert full.startswith(response.content) and len(response.content) < len(full)
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)


def test_html_fault_gives_the_login_page(private: SandboxHandle) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        control.set_faults("html:1")
        response = client.get("/product/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")


def test_slow_fault_answers_correctly_after_half_a_second(private: SandboxHandle) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        expected = client.get("/facility/").content
        control.set_faults("slow:1")
        started = time.perf_counter()
        response = client.get("/facility/")
        assert time.perf_counter() - started >= 0.5
        assert response.content == expected


def test_faulted_write_is_not_applied(private: SandboxHandle) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        count = control.count("order")
        control.set_faults("503:1")
        response = client.post("/order", json={"orderTypeId": "SALES_ORDER", "orderId": "F-1"})
        assert response.status_code == 503
        control.set_faults("")
        assert control.count("order") == count
        assert client.get("/order/F-1").status_code == 404


def test_faults_are_seeded_and_reproducible(private: SandboxHandle) -> None:
    def sequence() -> list[int]:
        control.set_faults("500:0.3,502:0.2", seed=11)
        return [client.get("/facility/").status_code for _ in range(30)]

    with api_client(private) as client, SandboxControl(private.base_url) as control:
        first = sequence()
        assert first == sequence()
        assert {200, 500, 502} == set(first)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("explode:0.1", id="unknown-kind"),
        pytest.param("500", id="missing-rate"),
        pytest.param("500:1.5", id="rate-above-one"),
        pytest.param("500:0.6,503:0.6", id="sum-above-one"),
    ],
)
def test_bad_fault_specs_are_rejected(private: SandboxHandle, spec: str) -> None:
    with pytest.raises(ValueError):
        parse_fault_spec(spec)
    response = plain_post(f"{private.base_url}/__sandbox__/faults", json={"spec": spec})
    assert response.status_code == 400


def test_control_api_is_never_faulted_or_limited(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    handle = make_sandbox(faults="500:1", rate_limit_per_minute=1)
    with SandboxControl(handle.base_url) as control:
        for _ in range(5):
            assert control.count("facility") > 0
    with api_client(handle) as client:
        assert client.get("/facility/").status_code == 500
