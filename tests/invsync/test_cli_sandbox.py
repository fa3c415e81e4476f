"""`invsync sandbox` serves a Finale sandbox and says how to point the sync at it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

INVSYNC = Path(sys.executable).with_name("invsync")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sandbox_command_prints_its_credentials_and_serves_them() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(INVSYNC), "sandbox", "--port", str(port), "--products", "40", "--seed", "7",
         "--account", "demo", "--api-key", "k1", "--api-secret", "s1", "--rate-limit", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/__sandbox__/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.2)
        products = httpx.get(f"{base}/demo/api/product/", auth=("k1", "s1"), timeout=10)
        assert products.status_code == 200
        assert len(products.json()["productId"]) == 40
        assert (
            httpx.get(f"{base}/demo/api/product/", auth=("k1", "no"), timeout=10).status_code == 401
        )
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    assert f"FINALE_BASE_URL={base}" in output
    assert "FINALE_ACCOUNT=demo" in output
    assert "FINALE_API_KEY=k1" in output and "FINALE_API_SECRET=s1" in output
