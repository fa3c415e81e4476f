"""The data-quality report: what was quarantined, why, and whether source and warehouse agree.

Built from ``sync_runs`` and ``quarantine`` only, so it describes exactly what the pipeline
did. The daily deployment publishes it as Prefect artifacts and writes it as JSON for
downstream analytics.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from pipeline.entities import ENTITIES
from schemas.tables import quarantine, sync_runs


def quality_report(
    conn: sa.Connection, *, hours: int = 24, now: datetime | None = None, top: int = 5
) -> dict[str, Any]:
    """Summarise the last ``hours`` of runs per entity.

    Returns:
        {"generated_at", "since", "entities": [{entity, runs, failed_runs, extracted,
        quarantined, quarantine_share, top_reasons: [[reason, count]], reconciled,
        last_reconcile: {source_count, warehouse_count, checksums_match}}]}.
    """
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    entities = []
    for name in ENTITIES:
        runs = conn.execute(
            sa.select(sync_runs)
            .where(sync_runs.c.entity == name, sync_runs.c.started_at >= since)
            .order_by(sync_runs.c.started_at)
        ).all()
        reasons: Counter[str] = Counter()
        for (text,) in conn.execute(
            sa.select(quarantine.c.reasons).where(
                quarantine.c.entity == name, quarantine.c.created_at >= since
            )
        ):
            reasons.update(r.strip() for r in text.split(";") if r.strip())
        extracted = sum(r.extracted for r in runs)
        quarantined = sum(r.quarantined for r in runs)
        reconciles = [r for r in runs if r.source_checksum is not None]
        last = reconciles[-1] if reconciles else None
        entities.append(
            {
                "entity": name,
                "runs": len(runs),
                "failed_runs": sum(r.status in ("failed", "crashed", "stale") for r in runs),
                "extracted": extracted,
                "quarantined": quarantined,
                "quarantine_share": round(quarantined / extracted, 6) if extracted else 0.0,
                "top_reasons": [[reason, n] for reason, n in reasons.most_common(top)],
                "last_reconcile": None
                if last is None
                else {
                    "at": last.started_at.isoformat(),
                    "source_count": last.source_count,
                    "warehouse_count": last.warehouse_count,
                    "checksums_match": last.source_checksum == last.warehouse_checksum,
                },
            }
        )
    return {"generated_at": now.isoformat(), "since": since.isoformat(), "entities": entities}
