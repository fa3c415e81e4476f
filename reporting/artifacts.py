"""Prefect artifacts: sync health, counts, a masked quarantine sample, the reports.

Artifacts are published under STABLE keys, so the Prefect UI's Artifacts page shows each
one's history across runs (a key must be lowercase letters, digits and dashes):

========================================  ==========  =====================================
key                                       type        content
========================================  ==========  =====================================
``sync-health``                           markdown    every entity at a glance (``health``)
``sync-counts``                           table       one row per entity of this run
``sync-counts-<entity>``                  table       that entity's row, for its own history
``sync-quarantine-sample``                table       masked sample of this run's quarantine
``data-quality-report``                   table       the daily report's run summary
``data-quality-reasons``                  markdown    rules the open quarantine fails
``sync-health-report``                    link        the day's HTML report (``html_report``)
``<key>`` given to ``create_progress``    progress    backfill progress, updated in place
========================================  ==========  =====================================

Every artifact carries a description that says what it holds (the UI shows it on the card).

(``<entity>`` is the entity name with ``_`` as ``-``: ``sync-counts-purchase-orders``.)

Publishing is best effort: an artifact that cannot be created is logged and skipped, because
the data the run committed is already in the warehouse and a reporting hiccup must not turn
a good run into a failed one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from connectors.redact import mask_text, redact_secrets
from reporting.health import health_markdown, health_rows, summary_line
from reporting.tables import counts_table, quarantine_summary, quarantine_table
from warehouse.runs import RunRecord

log = logging.getLogger(__name__)

COUNTS_KEY = "sync-counts"
QUARANTINE_KEY = "sync-quarantine-sample"
HEALTH_KEY = "sync-health"
REPORT_LINK_KEY = "sync-health-report"

_KEY_OK = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def artifact_key(*parts: str) -> str:
    """Join ``parts`` into a valid, stable artifact key: ``("sync-counts", "purchase_orders")``
    -> ``"sync-counts-purchase-orders"``.

    Raises:
        ValueError: if nothing usable is left (a key must not be empty).
    """
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not key:
        raise ValueError(f"no artifact key can be made from {parts!r}")
    return key


def _check_key(key: str) -> str:
    if not _KEY_OK.match(key):
        suggestion = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")
        hint = f" (try {suggestion!r})" if suggestion else ""
        raise ValueError(f"artifact key {key!r} must be lowercase letters, digits and dashes{hint}")
    return key


def _publish(kind: str, key: str, create: Any, **kwargs: Any) -> UUID | None:
    try:
        # ``_sync=True``: these helpers dispatch on the caller's context and would return an
        # un-awaited coroutine inside an async flow; this module is sync throughout.
        return cast(UUID, create(key=key, _sync=True, **kwargs))
    except Exception as exc:  # best effort: see the module docstring
        log.warning(
            "could not publish %s artifact %r: %s",
            kind,
            key,
            redact_secrets(f"{type(exc).__name__}: {exc}"),
        )
        return None


def _run_states(results: Sequence[RunRecord]) -> str:
    return ", ".join(f"{r.entity} {r.status.value}" for r in results) or "no entities"


def _in_run(run_id: str | None) -> str:
    return f" in sync run `{run_id}`" if run_id else ""


def publish_run_artifacts(
    results: Sequence[RunRecord],
    status_rows: Sequence[Mapping[str, Any]] | None = None,
    *,
    run_id: str | None = None,
    per_entity: bool = True,
    moved_24h: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> dict[str, UUID]:
    """Publish the health, counts and quarantine-sample artifacts of one sync run.

    Call it inside the flow run (the artifacts are then linked to it), after the entities
    finished, with their records (``EntityRunResult``) and the status rows of
    ``pipeline.status.all_statuses``.

    Args:
        results: one record per entity run (a failed entity's may have no counts).
        status_rows: the status JSON per entity, or ``None`` if it could not be computed
            (the health artifact then says so and lists this run's statuses).
        run_id: the sync run id, shown in the artifact descriptions.
        per_entity: also publish ``sync-counts-<entity>`` per entity.
        moved_24h: entity -> records written in the last 24 hours, for the health view.
        now: when the health was measured (default: now).

    Returns:
        ``{key: artifact id}`` for each artifact published (a failed one is absent).
    """
    if not results and status_rows is None:
        return {}
    run_id = run_id or next((r.run_id for r in results if r.run_id), None)
    now = now or datetime.now(UTC)
    published: dict[str, UUID | None] = {}
    try:  # best effort, like publishing: a row it cannot show must not fail the run
        rows = (
            health_rows(status_rows, moved_24h, now=now, touched={r.entity for r in results})
            if status_rows is not None
            else None
        )
    except (TypeError, ValueError) as exc:
        log.warning("could not build the sync-health rows: %s", redact_secrets(str(exc)))
        rows = None
    if rows is not None:
        markdown = health_markdown(rows, now=now, run_id=run_id)
        summary = summary_line(rows)
    else:
        markdown = (
            "### Sync health not available\n\nThe warehouse could not be read after this run; "
            f"its entities ended: {_run_states(results)}.\n"
        )
        summary = f"not available; this run: {_run_states(results)}"
    published[HEALTH_KEY] = _publish(
        "markdown",
        HEALTH_KEY,
        create_markdown_artifact,
        markdown=markdown,
        description=f"Sync health of every entity{_in_run(run_id)}: {summary}",
    )
    if results:
        published[COUNTS_KEY] = _publish(
            "table",
            COUNTS_KEY,
            create_table_artifact,
            table=counts_table(results),
            description=(
                f"Records read, written, quarantined and deleted per entity{_in_run(run_id)} "
                f"({_run_states(results)})"
            ),
        )
        if per_entity:
            for result in results:
                key = artifact_key(COUNTS_KEY, result.entity)
                published[key] = _publish(
                    "table",
                    key,
                    create_table_artifact,
                    table=counts_table([result]),
                    description=(
                        f"{result.entity}: records read, written, quarantined and deleted"
                        f"{_in_run(run_id)} ({result.status.value})"
                    ),
                )
        sample = quarantine_table(results)
        published[QUARANTINE_KEY] = _publish(
            "table",
            QUARANTINE_KEY,
            create_table_artifact,
            table=sample,
            description=(
                f"Sample of the records quarantined{_in_run(run_id)}, personal data masked "
                f"({len(sample['entity'])} shown): {quarantine_summary(results, status_rows)}"
            ),
        )
    return {key: value for key, value in published.items() if value is not None}


def publish_report_link(path: str, *, summary: str) -> UUID | None:
    """Publish the link artifact ``sync-health-report`` to the HTML report just written.

    Args:
        path: the report file (absolute; linked as a ``file://`` URL, which opens on the
            machine that wrote it or wherever ``REPORTS_DIR`` is shared).
        summary: the statuses at report time (``summary_line``), for the description.
    """
    from pathlib import Path

    url = Path(path).resolve().as_uri()
    return _publish(
        "link",
        REPORT_LINK_KEY,
        create_link_artifact,
        link=url,
        link_text=f"Sync-health report: {Path(path).name}",
        description=(
            "HTML report of sync health with 7- and 30-day trends per entity (records per "
            f"run, duration, quarantine share, freshness, checks): {summary}"
        ),
    )


class ProgressArtifact:
    """A progress artifact (0-100 %) created on first use and updated in place.

    For backfills: the UI shows one bar that moves, instead of one artifact per window.
    Creating and updating are best effort (logged, never raised): a progress bar must not
    fail the backfill it reports on.

    Args:
        key: stable artifact key (lowercase letters, digits, dashes), e.g.
            ``backfill-<id>``.
        description: shown next to the bar.

    Raises:
        ValueError: if ``key`` is not a valid artifact key.
    """

    def __init__(self, key: str, description: str | None = None) -> None:
        self.key = _check_key(key)
        self.description = description
        self.artifact_id: UUID | None = None
        self.progress: float | None = None

    def create(self, progress: float = 0.0) -> UUID | None:
        """Create the artifact at ``progress`` percent; returns its id (``None`` on failure)."""
        value = _clamp(progress)
        self.artifact_id = _publish(
            "progress",
            self.key,
            create_progress_artifact,
            progress=value,
            description=self.description,
        )
        if self.artifact_id is not None:
            self.progress = value
        return self.artifact_id

    def update(self, progress: float, description: str | None = None) -> None:
        """Move the bar to ``progress`` percent (0-100), creating the artifact if needed.

        Args:
            progress: percent done; clamped to 0..100.
            description: a new description, if it should change.
        """
        value = _clamp(progress)
        if description is not None:
            self.description = description
        if self.artifact_id is None:
            self.create(value)
            return
        if value == self.progress and description is None:
            return  # nothing to tell the API
        try:
            update_progress_artifact(
                artifact_id=self.artifact_id,
                progress=value,
                description=description,
                _sync=True,  # type: ignore[call-arg]  # async_dispatch accepts it
            )
            self.progress = value
        except Exception as exc:  # best effort: see the class docstring
            log.warning(
                "could not update progress artifact %r: %s",
                self.key,
                redact_secrets(f"{type(exc).__name__}: {exc}"),
            )


def _clamp(progress: float) -> float:
    return max(0.0, min(100.0, float(progress)))


def create_progress(
    key: str, description: str | None = None, progress: float = 0.0
) -> ProgressArtifact:
    """Create a progress artifact now and return the handle that updates it.

    Usage::

        bar = create_progress(f"backfill-{backfill_id}", "Backfill of products, 2024")
        for done, window in enumerate(windows, 1):
            ...
            bar.update(100 * done / len(windows))
    """
    bar = ProgressArtifact(key, description)
    bar.create(progress)
    return bar


QUALITY_KEY = "data-quality-report"


def publish_quality_report(report: Mapping[str, Any]) -> dict[str, UUID]:
    """Publish the data-quality report (``pipeline.quality.quality_report``) as artifacts.

    A table per entity (runs, records the runs quarantined, distinct open quarantine
    records, reconciliation) under the stable key ``data-quality-report``, and under
    ``data-quality-reasons`` a markdown of every rule the open records fail, with counts
    that add up to the stated total. Rules never hold personal data (the offending
    values are cut off), but are masked anyway.
    """
    rows = []
    lines = [f"# Data quality since {report.get('since')}", ""]
    for entity in report.get("entities", []):
        recon = entity.get("last_reconcile") or {}
        rows.append(
            {
                "entity": entity["entity"],
                "runs": entity["runs"],
                "failed_runs": entity["failed_runs"],
                "extracted": entity["extracted"],
                "quarantined_by_runs": entity["quarantined"],
                "quarantine_share": entity["quarantine_share"],
                "open_quarantine_records": entity["open_quarantine"],
                "source_count": recon.get("source_count"),
                "warehouse_count": recon.get("warehouse_count"),
                "checksums_match": recon.get("checksums_match"),
            }
        )
        lines += [
            f"## {entity['entity']}: open quarantine: {entity['open_quarantine']} records",
            "",
        ]
        if entity["open_quarantine"]:
            lines += [
                f"Open records failing each rule (a record failing several rules counts under "
                f"each; the counts add up to {entity['open_rule_failures']} record-rule "
                "failures):",
                "",
            ]
        for rule, count in entity.get("open_by_rule", []):
            lines.append(f"- {count} x {mask_text(redact_secrets(str(rule)))}")
        if not entity.get("open_by_rule"):
            lines.append("- no open quarantined records")
        lines.append("")
    published = {
        QUALITY_KEY: _publish(
            "table",
            QUALITY_KEY,
            create_table_artifact,
            table=rows,
            description=(
                f"Data quality since {report.get('since')}: runs, records quarantined, open "
                "quarantine and the last reconciliation per entity"
            ),
        ),
        "data-quality-reasons": _publish(
            "markdown",
            "data-quality-reasons",
            create_markdown_artifact,
            markdown="\n".join(lines),
            description="The validation rules the open quarantine records fail, per entity",
        ),
    }
    return {key: value for key, value in published.items() if value is not None}
