"""Pure builders of what the artifacts show: counts rows and quarantine rows.

(The health view is ``reporting.health``.)

Kept apart from ``reporting.artifacts`` (which talks to the Prefect API) so the content can
be tested as data. Everything that comes from a record or an error message is masked
(personal data) and redacted (secrets) here, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.redact import mask_pii, mask_text, redact_secrets, truncate
from pipeline.sync import EntityRunResult
from warehouse.runs import RunRecord

#: Columns of the counts table, in display order.
COUNT_COLUMNS = (
    "entity",
    "status",
    "mode",
    "extracted",
    "inserted",
    "updated",
    "unchanged",
    "quarantined",
    "deleted",
    "chunks",
    "duration_s",
    "watermark_before",
    "watermark_after",
    "started_at",
    "finished_at",
    "reconciled",
    "error",
)

#: Columns of the quarantine sample table.
QUARANTINE_COLUMNS = ("entity", "source_key", "reasons", "payload")

#: Longest payload JSON shown per quarantined record (the artifact is for a glance; the
#: full record is in the quarantine table).
PAYLOAD_LIMIT = 1500
ERROR_LIMIT = 300


def clean_text(text: str | None, limit: int = ERROR_LIMIT) -> str | None:
    """Redact secrets, mask personal data, truncate: for errors and reasons shown in the UI."""
    if text is None:
        return None
    return truncate(mask_text(redact_secrets(str(text))), limit)


def chunks_of(result: RunRecord) -> int:
    """The chunks a run loaded: known to the process that ran it, 0 for a stored record."""
    return result.chunks if isinstance(result, EntityRunResult) else 0


def sample_of(result: RunRecord) -> list[dict[str, Any]]:
    """The run's quarantine sample (raw): empty for a stored record (a failed entity's)."""
    return result.quarantine_sample if isinstance(result, EntityRunResult) else []


def counts_row(result: RunRecord) -> dict[str, Any]:
    """One row of the counts table from a run's record.

    A failed entity may have no counts and no times: they show as 0 and empty.
    """
    data = result.as_dict()  # times as ISO strings, the status as its value
    row: dict[str, Any] = {name: data[name] for name in ("entity", "status", "mode")}
    for name in ("extracted", "inserted", "updated", "unchanged", "quarantined", "deleted"):
        row[name] = data[name]
    row["chunks"] = chunks_of(result)
    duration_ms = result.duration_ms
    row["duration_s"] = round(duration_ms / 1000, 1) if duration_ms is not None else None
    for name in ("watermark_before", "watermark_after", "started_at", "finished_at"):
        row[name] = data[name]
    row["reconciled"] = result.reconciled
    row["error"] = clean_text(result.error)
    return row


def counts_table(results: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """The counts table: one row per entity result, columns ``COUNT_COLUMNS``."""
    return [counts_row(r) for r in results]


def quarantine_rows(result: RunRecord) -> list[dict[str, Any]]:
    """The masked quarantine sample of one entity result.

    ``payload`` is the raw Finale record with emails and phone numbers masked at any depth,
    as compact JSON, cut at ``PAYLOAD_LIMIT`` characters (after masking, so a cut can never
    expose half an address).
    """
    rows = []
    for item in sample_of(result):
        payload = json.dumps(mask_pii(item.get("payload")), default=str, ensure_ascii=False)
        rows.append(
            {
                "entity": result.entity,
                # Keys are ids, not phone numbers: only an email-shaped key is masked.
                "source_key": None
                if item.get("source_key") is None
                else mask_text(str(item["source_key"]), phones=False),
                "reasons": clean_text(_reasons(item.get("reasons")), limit=1000),
                "payload": truncate(redact_secrets(payload), PAYLOAD_LIMIT),
            }
        )
    return rows


def _reasons(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


def quarantine_table(results: Iterable[RunRecord]) -> dict[str, list[Any]]:
    """Every entity's masked sample of what THIS run quarantined, as columns
    (``QUARANTINE_COLUMNS``).

    Column form, so a run without quarantined records still yields a table with headers
    and no rows: publishing it keeps the UI's "latest" from showing an older run's sample.
    """
    rows = [row for result in results for row in quarantine_rows(result)]
    return {column: [row[column] for row in rows] for column in QUARANTINE_COLUMNS}


def quarantine_summary(
    results: Iterable[RunRecord], status_rows: Iterable[Mapping[str, Any]] | None
) -> str:
    """One line on quarantine: what this run quarantined, and the distinct open records.

    The two differ: a run counts every record it read and quarantined (the same record in
    two overlapping windows counts twice), while the quarantine table keeps one open entry
    per record until it loads cleanly. ``status_rows`` (with ``open_quarantine``) give the
    second; without them it is left out.
    """
    this_run = sum(r.quarantined for r in results)
    line = f"this run quarantined {this_run} records read"
    if status_rows is not None:
        open_records = sum(int(r.get("open_quarantine") or 0) for r in status_rows)
        line += f"; open quarantine: {open_records} records"
    return line
