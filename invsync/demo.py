"""``invsync demo``: the whole product on one machine, with no account and no server.

Starts the Finale sandbox on a free loopback port, runs a full sync into the embedded SQLite
warehouse, changes records in the sandbox the way people do in Finale, runs an incremental
sync and prints what changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from warehouse.runs import RunRecord, SyncSummary


def _point_settings_at(base_url: str, account: str, key: str, secret: str, url: str) -> None:
    # The demo is an edge, like the CLI: it sets the environment the flows load settings from.
    os.environ.update(
        FINALE_BASE_URL=base_url,
        FINALE_ACCOUNT=account,
        FINALE_API_KEY=key,
        FINALE_API_SECRET=secret,
        WAREHOUSE_URL=url,
    )
    for name in ("FINALE_USERNAME", "FINALE_PASSWORD"):
        os.environ.pop(name, None)


def _line(name: str, r: RunRecord) -> str:
    if r.started_at is None:  # failed before its run was recorded: no counts
        return f"  {name:16} FAILED {r.error}"
    return (
        f"  {name:16} {r.status.value:10} extracted={r.extracted:<6} inserted={r.inserted:<6} "
        f"updated={r.updated:<6} unchanged={r.unchanged:<6} "
        f"quarantined={r.quarantined:<4} deleted={r.deleted}"
    )


def quarantine_lines(runs: dict[str, SyncSummary], open_records: int) -> list[str]:
    """What each sync quarantined (from its results), then the open quarantine records.

    Args:
        runs: ``{sync label: the run summary}``.
        open_records: distinct records in quarantine now (open entries of the table). A
            record read by both syncs is counted by each run but is one open record.
    """
    lines = []
    for label, summary in runs.items():
        counts = {name: r.quarantined for name, r in summary.entities.items() if r.quarantined}
        detail = ", ".join(f"{name} {n}" for name, n in counts.items())
        lines.append(
            f"  {label} quarantined {sum(counts.values())} records it read"
            + (f" ({detail})" if detail else "")
        )
    lines.append(
        f"  open quarantine: {open_records} records (distinct, not yet loaded cleanly; "
        "see the quarantine table)"
    )
    return lines


#: Runs the ``finale-sync`` flow with these parameters; returns (succeeded, run summary).
SyncRunner = Callable[..., tuple[bool, "SyncSummary"]]


def run_demo(
    *,
    products: int,
    warehouse_url: str,
    sync: SyncRunner,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the demo; return the process exit code (0 when both syncs succeeded).

    Args:
        products: size of the sandbox account.
        warehouse_url: where to load.
        sync: runs one sync; the CLI hands in its own ``run_sync``, so the demo runs syncs
            exactly as ``invsync sync`` does without importing the CLI.
        echo: where the story is printed.
    """
    # Keep the demo's output to the story; Prefect's per-task lines are in the UI anyway.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # With no Prefect server configured, Prefect starts a temporary one; a first run on a
    # slow machine can need more than its default 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from invsync.prefect_server import temporary_server
    from sandbox.control import SandboxControl
    from sandbox.server import SandboxConfig, start_in_thread
    from schemas import tables
    from warehouse.db import create_warehouse_engine
    from warehouse.state import count_open_quarantine

    config = SandboxConfig(port=0, products=products, rate_limit_per_minute=0)
    # One temporary Prefect server for both syncs (it stops with the demo, even if killed).
    with temporary_server(), start_in_thread(config) as handle:
        echo(f"Finale sandbox at {handle.base_url}/{config.account} ({products} products)")
        _point_settings_at(
            handle.base_url, config.account, config.api_key, config.api_secret, warehouse_url
        )
        echo(f"Warehouse: {warehouse_url}\n\n1. Full sync")
        ok_full, full = sync(mode="full")
        for name, r in full.entities.items():
            echo(_line(name, r))

        control = SandboxControl(handle.base_url)
        touched = control.touch("product", 25)
        deactivated = control.deactivate_products(5)
        cancelled = control.cancel_orders(3)
        restocked = control.change_stock(20)
        echo(
            f"\n2. Changed in Finale: {len(touched)} products edited, {len(deactivated)} "
            f"deactivated, {len(cancelled)} orders cancelled, {len(restocked)} stock rows moved"
        )
        second_started = datetime.now(UTC)
        echo("\n3. Incremental sync")
        ok_inc, inc = sync(mode="incremental")
        for name, r in inc.entities.items():
            echo(_line(name, r))

    from invsync.settings import load_settings

    # The schema the flows loaded into (WAREHOUSE_SCHEMA, from the same environment).
    engine = create_warehouse_engine(warehouse_url, schema=load_settings().warehouse_schema)
    try:
        with engine.connect() as conn:
            echo("\n4. What changed in the warehouse")
            for table, key in ((tables.products, "sku"), (tables.purchase_orders, "order_id")):
                fresh = table.c.synced_at >= second_started
                keys = conn.execute(
                    sa.select(table.c[key], table.c.status).where(fresh).order_by(table.c[key])
                ).all()
                sample = ", ".join(f"{k} ({s})" for k, s in keys[:5])
                echo(f"  {table.name}: {len(keys)} rows rewritten, e.g. {sample or '-'}")
            runs = {"the full sync": full, "the incremental sync": inc}
            for line in quarantine_lines(runs, count_open_quarantine(conn)):
                echo(line)
    finally:
        engine.dispose()
    echo("\nTry: invsync status   (with WAREHOUSE_URL=" + warehouse_url + ")")
    return 0 if ok_full and ok_inc else 1
