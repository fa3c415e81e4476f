"""Pure builders of what the artifacts show: counts rows, quarantine rows, health markdown.

Kept apart from ``reporting.artifacts`` (which talks to the Prefect API) so the content can
be tested as data. Everything that comes from a record or an error message is masked
(personal data) and redacted (secrets) here, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from notifications.redact import redact_secrets, truncate
from reporting.masking import mask_pii, mask_text

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


def _reconciled(result: Mapping[str, Any]) -> bool | None:
    if result.get("source_checksum") is None:
        return None  # incremental runs do not reconcile
    return bool(
        result.get("source_count") == result.get("warehouse_count")
        and result.get("source_checksum") == result.get("warehouse_checksum")
    )


def counts_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the counts table from an ``EntityRunResult.as_dict()``.

    A failed entity may carry only ``entity``, ``status`` and ``error``: missing counts
    show as 0, missing times as empty.
    """
    duration_ms = result.get("duration_ms")
    row: dict[str, Any] = {
        "entity": result.get("entity"),
        "status": result.get("status"),
        "mode": result.get("mode"),
    }
    for name in ("extracted", "inserted", "updated", "unchanged", "quarantined", "deleted"):
        row[name] = int(result.get(name) or 0)
    row["chunks"] = int(result.get("chunks") or 0)
    row["duration_s"] = round(duration_ms / 1000, 1) if duration_ms is not None else None
    for name in ("watermark_before", "watermark_after", "started_at", "finished_at"):
        value = result.get(name)
        row[name] = value.isoformat() if isinstance(value, datetime) else value
    row["reconciled"] = _reconciled(result)
    row["error"] = clean_text(result.get("error"))
    return row


def counts_table(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The counts table: one row per entity result, columns ``COUNT_COLUMNS``."""
    return [counts_row(r) for r in results]


def quarantine_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The masked quarantine sample of one entity result.

    ``payload`` is the raw Finale record with emails and phone numbers masked at any depth,
    as compact JSON, cut at ``PAYLOAD_LIMIT`` characters (after masking, so a cut can never
    expose half an address).
    """
    rows = []
    for item in result.get("quarantine_sample") or []:
        payload = json.dumps(mask_pii(item.get("payload")), default=str, ensure_ascii=False)
        rows.append(
            {
                "entity": result.get("entity"),
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


def quarantine_table(results: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Every entity's masked sample of what THIS run quarantined, as columns
    (``QUARANTINE_COLUMNS``).

    Column form, so a run without quarantined records still yields a table with headers
    and no rows: publishing it keeps the UI's "latest" from showing an older run's sample.
    """
    rows = [row for result in results for row in quarantine_rows(result)]
    return {column: [row[column] for row in rows] for column in QUARANTINE_COLUMNS}


def quarantine_summary(
    results: Iterable[Mapping[str, Any]], status_rows: Iterable[Mapping[str, Any]] | None
) -> str:
    """One line on quarantine: what this run quarantined, and the distinct open records.

    The two differ: a run counts every record it read and quarantined (the same record in
    two overlapping windows counts twice), while the quarantine table keeps one open entry
    per record until it loads cleanly. ``status_rows`` (with ``open_quarantine``) give the
    second; without them it is left out.
    """
    this_run = sum(int(r.get("quarantined") or 0) for r in results)
    line = f"this run quarantined {this_run} records read"
    if status_rows is not None:
        open_records = sum(int(r.get("open_quarantine") or 0) for r in status_rows)
        line += f"; open quarantine: {open_records} records"
    return line


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    # A pipe would end the cell; a newline would end the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def clean_status(row: Mapping[str, Any]) -> dict[str, Any]:
    """A status JSON row with ``last_error`` redacted and masked."""
    out = dict(row)
    if out.get("last_error") is not None:
        out["last_error"] = clean_text(out["last_error"], limit=1000)
    return out


def health_markdown(
    status_rows: Iterable[Mapping[str, Any]] | None, results: Iterable[Mapping[str, Any]] = ()
) -> str:
    """Markdown for the health artifact: a summary table, then each entity's status JSON.

    Args:
        status_rows: rows of ``pipeline.status.entity_status`` (one per entity), or ``None``
            when the status could not be computed (then the run's own statuses are shown).
        results: this run's entity results, to mark which entities this run touched.
    """
    touched = {r.get("entity") for r in results}
    lines = ["# Sync health", ""]
    if status_rows is None:
        lines += ["Status JSON not available for this run.", ""]
        lines += ["| entity | run status |", "|---|---|"]
        lines += [f"| {_cell(r.get('entity'))} | {_cell(r.get('status'))} |" for r in results]
        return "\n".join(lines) + "\n"
    rows = [clean_status(r) for r in status_rows]
    lines += [
        "| entity | status | health score | last sync | records synced | errors | "
        "duration (ms) | next sync | open quarantine (records) | in this run |",
        "|---|---|---:|---|---:|---:|---:|---|---:|---|",
    ]
    for row in rows:
        metrics = row.get("metrics") or {}
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    row.get("entity"),
                    row.get("status"),
                    row.get("health_score"),
                    row.get("last_sync"),
                    metrics.get("records_synced"),
                    metrics.get("errors"),
                    metrics.get("sync_duration_ms"),
                    metrics.get("next_sync"),
                    row.get("open_quarantine"),
                    "yes" if row.get("entity") in touched else "",
                )
            )
            + " |"
        )
    lines += [
        "",
        "Health score: 100, minus 50 for a failed last run, 20 for a degraded one, up to 20 "
        "for quarantined records and up to 30 for staleness (see `pipeline/status.py`). "
        "Errors are the latest run's (records it quarantined, +1 if it failed); open "
        "quarantine counts distinct records still failing, however many runs read them.",
        "",
    ]
    for row in rows:
        lines += [f"## {row.get('entity')}", "", "```json"]
        lines.append(json.dumps(row, indent=2, default=str, ensure_ascii=False))
        lines += ["```", ""]
    return "\n".join(lines)
