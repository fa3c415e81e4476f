"""Starting and configuring the sandbox server."""

from __future__ import annotations

import time

import httpx
import pytest
from sandbox_helpers import plain_get

from sandbox.server import SandboxConfig, banner, start_in_thread


def test_start_in_thread_is_fast_and_reports_the_real_port() -> None:
    started = time.perf_counter()
    with start_in_thread(SandboxConfig(port=0, products=1000)) as handle:
        assert time.perf_counter() - started < 1.0
        port = int(handle.base_url.rsplit(":", 1)[1])
        assert port != 0
        first_read = time.perf_counter()
        response = plain_get(f"{handle.api_url}/product/", auth=("sandbox-key", "sandbox-secret"))
        assert response.status_code == 200
        assert time.perf_counter() - first_read < 1.0
    with pytest.raises(httpx.TransportError):
        plain_get(f"{handle.base_url}/__sandbox__/health", timeout=1.0)


def test_custom_account_and_credentials() -> None:
    config = SandboxConfig(port=0, products=20, account="beta", api_key="k", api_secret="s")
    with start_in_thread(config) as handle:
        assert (
            plain_get(f"{handle.base_url}/beta/api/facility/", auth=("k", "s")).status_code == 200
        )
        assert (
            plain_get(f"{handle.base_url}/acme/api/facility/", auth=("k", "s")).status_code == 404
        )
        assert handle.env == {
            "FINALE_BASE_URL": handle.base_url,
            "FINALE_ACCOUNT": "beta",
            "FINALE_API_KEY": "k",
            "FINALE_API_SECRET": "s",
        }


def test_banner_prints_url_credentials_and_env_vars() -> None:
    text = banner(SandboxConfig(), "http://127.0.0.1:8700")
    for expected in (
        "http://127.0.0.1:8700/acme/api/",
        "sandbox-key / sandbox-secret",
        "sandbox-user / sandbox-pass",
        "export FINALE_BASE_URL=http://127.0.0.1:8700",
        "export FINALE_ACCOUNT=acme",
        "export FINALE_API_KEY=sandbox-key",
        "export FINALE_API_SECRET=sandbox-secret",
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        pytest.param({"products": 0}, "products", id="no-products"),
        pytest.param({"faults": "boom:1"}, "fault kind", id="bad-faults"),
        pytest.param({"timezone": "Mars/Base"}, "time zone", id="bad-timezone"),
        pytest.param({"account": "a/b"}, "account", id="bad-account"),
        pytest.param({"rate_limit_per_minute": -5}, "rate_limit", id="negative-rate"),
    ],
)
def test_invalid_config_is_rejected_with_a_named_reason(options: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SandboxConfig(**options)
