"""How fast the Finale sandbox generates and serves a large account.

Starts ``python -m sandbox`` in its own process (so server and client each get a core), then:

1. generation: time and memory to build the account (forced through the control API);
2. cold pass: reads the product collection in pages of ``--page-size`` via httpx on loopback;
3. warm pass: the same pages again (served from the encoded-bytes cache).

Prints one line per figure. A script, not a test; bounded by ``--budget`` seconds.

    .venv/bin/python benchmarks/sandbox_serving.py                  # 1,000,000 products
    .venv/bin/python benchmarks/sandbox_serving.py --products 100000 --collections product,order
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.control import SandboxControl  # noqa: E402 - needs the repo root on sys.path

KEY = ("sandbox-key", "sandbox-secret")


@dataclass
class Pass:
    """Figures of one full read of a collection."""

    records: int
    pages: int
    megabytes: float
    fetch_seconds: float
    parse_seconds: float
    gc_paused: bool

    def line(self, label: str) -> str:
        rate = self.records / self.fetch_seconds if self.fetch_seconds else float("inf")
        return (
            f"{label:<28} {self.records:>10,} records in {self.pages:>3} pages, "
            f"{self.megabytes:8.1f} MB, fetch {self.fetch_seconds:7.2f} s "
            f"= {rate:>11,.0f} records/s ({self.megabytes / self.fetch_seconds:7.1f} MB/s); "
            f"client orjson parse {self.parse_seconds:.2f} s"
            f" (gc {'paused' if self.gc_paused else 'on'})"
        )


def _memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return (
        int(fields["VmRSS"].split()[0]) / 1024,
        int(fields["VmHWM"].split()[0]) / 1024,
    )


def _start(
    products: int, seed: int, max_entities: int, deadline: float
) -> tuple[subprocess.Popen, str]:
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--port=0",
        f"--products={products}",
        f"--seed={seed}",
        "--rate-limit-per-minute=0",
        f"--max-entities={max_entities}",
        f"--cache-bytes={4 << 30}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox exited before announcing its URL")
        if line.startswith("Finale sandbox listening on "):
            return process, line.split()[-1]
    raise RuntimeError("the sandbox did not start in time")


def _read(
    client: httpx.Client, collection: str, page_size: int, deadline: float, *, pause_gc: bool
) -> Pass:
    """Read a whole collection page by page; parse each page to count its records.

    Parsing allocates a Python object per value; with the cyclic GC on, that costs ~3x more
    (the GC rescans them), so the warm pass parses with the GC paused to show the difference.
    """
    records = pages = size = 0
    fetch = parse = 0.0
    offset = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = client.get(f"/{collection}/", params={"limit": page_size, "offset": offset})
        body = response.content
        fetch += time.perf_counter() - started
        response.raise_for_status()
        if pause_gc:
            gc.disable()
        started = time.perf_counter()
        count = len(next(iter(orjson.loads(body).values()), []))
        parse += time.perf_counter() - started
        gc.enable()
        records += count
        pages += 1
        size += len(body)
        offset += count
        if count < page_size:
            break
    else:
        raise TimeoutError("benchmark budget exhausted")
    return Pass(records, pages, size / 1e6, fetch, parse, pause_gc)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--collections", default="product", help="comma-separated")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds, whole run")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.budget
    collections = [c.strip() for c in args.collections.split(",") if c.strip()]

    print(
        f"Finale sandbox serving benchmark: {args.products:,} products, pages of {args.page_size:,}"
    )
    started = time.perf_counter()
    process, base_url = _start(args.products, args.seed, max(args.page_size, 120_000), deadline)
    print(f"{'server start':<28} {time.perf_counter() - started:7.2f} s (data not generated yet)")
    try:
        timeout = httpx.Timeout(max(1.0, deadline - time.monotonic()))
        with SandboxControl(base_url, httpx.Client(timeout=timeout)) as control:
            started = time.perf_counter()
            info = control.info()  # generates every collection
            generation = time.perf_counter() - started
            rss, peak = _memory_mb(process.pid)
            counts = ", ".join(f"{k} {v:,}" for k, v in info["counts"].items())
            per = ", ".join(f"{k} {v:.2f}s" for k, v in info["generation_seconds"].items())
            print(f"{'generation (all collections)':<28} {generation:7.2f} s  ({per})")
            print(f"{'records':<28} {counts}")
            print(f"{'server RSS after generation':<28} {rss:7.0f} MB (peak {peak:.0f} MB)")
            with httpx.Client(
                base_url=f"{base_url}/{info['account']}/api", auth=KEY, timeout=timeout
            ) as client:
                for collection in collections:
                    cold = _read(client, collection, args.page_size, deadline, pause_gc=False)
                    print(cold.line(f"{collection} cold"))
                    warm = _read(client, collection, args.page_size, deadline, pause_gc=True)
                    print(warm.line(f"{collection} warm"))
            rss, peak = _memory_mb(process.pid)
            print(f"{'server RSS at the end':<28} {rss:7.0f} MB (peak {peak:.0f} MB)")
            cache = control.stats()["cache"]
            print(
                f"{'page cache':<28} {cache['entries']} pages, {cache['bytes'] / 1e6:.0f} MB, "
                f"{cache['hits']} hits / {cache['misses']} misses"
            )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
