"""The ``data-quality-report`` flow: a daily report of open quarantine and reconciliation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from invsync.settings import load_settings
from pipeline.quality import quality_report
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


@flow(name="data-quality-report", log_prints=True)
def data_quality_report(hours: int = 24, output_dir: str = "data/reports") -> dict[str, Any]:
    """Build the data-quality report, publish it as artifacts and write it as JSON.

    Args:
        hours: how far back the report looks.
        output_dir: where the JSON hand-off file for downstream analytics is written.
    """
    from reporting.artifacts import publish_quality_report

    settings = load_settings()
    upgrade(settings.warehouse_url, schema=settings.warehouse_schema)
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    try:
        with engine.connect() as conn:
            report = quality_report(conn, hours=hours)
    finally:
        engine.dispose()
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"data-quality-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    publish_quality_report(report)
    open_records = {e["entity"]: e["open_quarantine"] for e in report["entities"]}
    detail = ", ".join(f"{name} {n}" for name, n in open_records.items() if n)
    print(
        f"open quarantine: {sum(open_records.values())} records"
        + (f" ({detail})" if detail else "")
    )
    print(f"data-quality report written to {path}")
    return {**report, "path": str(path)}
