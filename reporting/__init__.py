"""Sync-health reporting in Prefect: artifacts per run, events per entity, masking.

- ``publish_run_artifacts(results, status_rows)``: health at a glance, counts, quarantine
  sample (``reporting.health`` builds the health view);
- ``html_report``: the self-contained sync-health HTML report with 7- and 30-day trends,
  linked by ``publish_report_link``;
- ``create_progress(key)`` / ``ProgressArtifact``: a backfill's progress bar;
- ``emit_sync_event(result, status)``: ``inventory-sync.sync.{completed,degraded,failed}``;
- ``emit_dq_report_event(payload)``: ``inventory-sync.dq.report.ready``, where a report is;
- masking of emails and phone numbers (``mask_pii``, ...) is re-exported from
  ``connectors.redact``, the one module that masks secrets and personal data.
"""

from connectors.redact import mask_email, mask_phone, mask_pii, mask_text
from reporting.artifacts import (
    COUNTS_KEY,
    HEALTH_KEY,
    QUARANTINE_KEY,
    REPORT_LINK_KEY,
    ProgressArtifact,
    artifact_key,
    create_progress,
    publish_report_link,
    publish_run_artifacts,
)
from reporting.events import (
    EVENT_COMPLETED,
    EVENT_DEGRADED,
    EVENT_DQ_REPORT_READY,
    EVENT_FAILED,
    dq_report_payload,
    emit_dq_report_event,
    emit_sync_event,
    entity_resource,
    sync_event_payload,
)

__all__ = [
    "COUNTS_KEY",
    "EVENT_COMPLETED",
    "EVENT_DEGRADED",
    "EVENT_DQ_REPORT_READY",
    "EVENT_FAILED",
    "HEALTH_KEY",
    "QUARANTINE_KEY",
    "REPORT_LINK_KEY",
    "ProgressArtifact",
    "artifact_key",
    "create_progress",
    "dq_report_payload",
    "emit_dq_report_event",
    "emit_sync_event",
    "entity_resource",
    "mask_email",
    "mask_phone",
    "mask_pii",
    "mask_text",
    "publish_report_link",
    "publish_run_artifacts",
    "sync_event_payload",
]
