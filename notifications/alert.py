"""What an alert says, and when one is due.

An alert goes out once per *state change* of an entity, never once per retry: a sync that
fails every 15 minutes overnight sends one "failed" message and, when it is fixed, one
"recovered" message. ``transition`` decides this from the entity's previous and current
run status; the caller reads the previous status from ``sync_runs`` (the entity's last
finished run before this one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from connectors.redact import summarize_error

if TYPE_CHECKING:  # only for annotations: alerting needs no database driver
    from warehouse.runs import RunRecord

AlertKind = Literal["failed", "crashed", "degraded", "recovered"]

#: Every alert kind, in order of severity (worst first).
ALERT_KINDS: tuple[AlertKind, ...] = ("crashed", "failed", "degraded", "recovered")

# Run statuses, and the aliases other parts of the system use for them, folded into the
# four states the transition table knows. "failing"/"operational" come from the status JSON
# (pipeline/status.py), "stale" from a run that stopped reporting, "completed" from Prefect.
_STATE_OF: dict[str, str] = {
    "succeeded": "ok",
    "success": "ok",
    "completed": "ok",
    "operational": "ok",
    "healthy": "ok",
    "degraded": "degraded",
    "failed": "failed",
    "failing": "failed",
    "stale": "failed",
    "crashed": "crashed",
}

# Previous statuses that carry no information about health: treated like a first run.
_UNKNOWN_PREVIOUS = frozenset({"running", "pending", "scheduled", "cancelled", "cancelling"})


def _fold(status: str) -> str:
    return status.strip().lower()


def transition(previous_status: str | None, current_status: str) -> AlertKind | None:
    """Decide which alert, if any, the change from ``previous_status`` to ``current_status`` needs.

    Statuses are folded first: succeeded / completed / operational / healthy are "ok";
    failed / failing / stale are "failed"; degraded and crashed are themselves. A previous
    status of ``None`` (first run), running, pending, scheduled or cancelled says nothing
    about health and is treated as "no previous state".

    The table (rows: previous, columns: current)::

        previous \\ current | ok         | degraded  | failed  | crashed
        --------------------+------------+-----------+---------+--------
        none (first run)    | -          | degraded  | failed  | crashed
        ok                  | -          | degraded  | failed  | crashed
        degraded            | recovered  | -         | failed  | crashed
        failed              | recovered  | degraded  | -       | -
        crashed             | recovered  | degraded  | -       | -

    Why these choices:

    - same state twice is silent: that is a retry or the next scheduled run of a problem
      people already know about;
    - failed and crashed are both "down": alternating between them (a crash, then a retry
      that fails) is still the same outage, so it stays silent;
    - failed -> degraded is a change people act on (the data flows again but does not
      reconcile), so it alerts as "degraded"; degraded -> failed escalates, so it alerts;
    - a first run that succeeds is not news; a first run that fails is.

    Args:
        previous_status: status of the entity's previous finished run, or ``None``.
        current_status: status of the run that just finished.

    Returns:
        The alert kind to send, or ``None`` when no alert is due.

    Raises:
        ValueError: if ``current_status`` is not a known run status (a wiring bug: the
            caller should pass the status of a finished run).
    """
    current = _STATE_OF.get(_fold(current_status))
    if current is None:
        raise ValueError(
            f"unknown run status {current_status!r}; expected one of {', '.join(sorted(_STATE_OF))}"
        )
    previous: str | None = None
    if previous_status is not None and _fold(previous_status) not in _UNKNOWN_PREVIOUS:
        # An unrecognised previous status (a future status name) is treated as "ok": at
        # worst that sends one extra alert, never swallows one.
        previous = _STATE_OF.get(_fold(previous_status), "ok")
    down = ("failed", "crashed")
    if current == "ok":
        return "recovered" if previous in ("degraded", *down) else None
    if current == previous or (current in down and previous in down):
        return None
    if current == "degraded":
        return "degraded"
    return "crashed" if current == "crashed" else "failed"


@dataclass(frozen=True)
class Alert:
    """One alert about one entity, ready to render; carries no secret and no personal data.

    ``error`` is re-redacted and truncated on construction, whatever the caller passed: the
    alert is the last stop before an inbox and a chat channel.

    Attributes:
        kind: failed, crashed, degraded or recovered.
        entity: entity name (products, stock, ...).
        deployment: Prefect deployment name; ``None`` for a run started from the CLI.
        flow_run_url: link to the flow run in the Prefect UI, when known.
        error: short, redacted error summary (``None`` for recoveries).
        extracted: records read from Finale.
        inserted: rows inserted.
        updated: rows updated.
        unchanged: rows unchanged.
        quarantined: records that failed validation.
        quarantine_share: quarantined / extracted (0..1), ``None`` when nothing was read.
        last_success_at: when the entity last synced successfully (its freshness).
        health_score: 0-100 score from the status JSON, when known.
        run_id: the sync run id (``sync_runs.run_id``).
    """

    kind: AlertKind
    entity: str
    deployment: str | None = None
    flow_run_url: str | None = None
    error: str | None = None
    extracted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    quarantine_share: float | None = None
    last_success_at: datetime | None = None
    health_score: int | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(f"alert kind must be one of {', '.join(ALERT_KINDS)}")
        # Frozen dataclass: object.__setattr__ is the documented way to normalise a field.
        object.__setattr__(self, "error", summarize_error(self.error))

    @property
    def counts(self) -> dict[str, int]:
        """The record counts, in display order."""
        return {
            "extracted": self.extracted,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
        }

    @classmethod
    def from_result(
        cls,
        kind: AlertKind,
        result: RunRecord,
        *,
        deployment: str | None = None,
        flow_run_url: str | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> Alert:
        """Build an alert from a run's record and the entity's status JSON.

        Args:
            kind: the kind ``transition`` returned.
            result: the run's record (an ``EntityRunResult``, or what a failed run left:
                perhaps no counts, just its error).
            deployment: the deployment name (``prefect.runtime.deployment.name``), if any.
            flow_run_url: the flow run's UI link (``prefect.runtime.flow_run.ui_url``), if any.
            status: the entity's row from ``pipeline.status.entity_status``, for freshness
                (``last_sync``) and ``health_score``.
        """
        share = result.quarantined / result.extracted if result.extracted else None
        status = status or {}
        score = status.get("health_score")
        return cls(
            kind=kind,
            entity=result.entity,
            deployment=deployment,
            flow_run_url=flow_run_url,
            error=None if kind == "recovered" else result.error,
            extracted=result.extracted,
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            quarantined=result.quarantined,
            quarantine_share=share,
            last_success_at=_parse_time(status.get("last_sync")),
            health_score=int(score) if score is not None else None,
            run_id=result.run_id,
        )


def flow_run_link(
    run_id: str | None, run_name: str | None, ui_url: str | None, api_url: str | None
) -> str | None:
    """Where an alert points the reader: the flow run in the Prefect UI, or its name.

    The UI address is ``PREFECT_UI_URL``, else the API's (``PREFECT_API_URL`` without its
    ``/api``); with neither (a CLI run on a temporary server) the run is named instead of
    linked, never as a broken ``None/runs/...`` link.
    """
    if not run_id:
        return None
    base = ui_url or (api_url.removesuffix("/").removesuffix("/api") if api_url else None)
    if base:
        return f"{base.rstrip('/')}/runs/flow-run/{run_id}"  # the UI's path, as Prefect logs it
    return f"{run_name or 'flow run'} ({run_id}); no Prefect UI address is set (PREFECT_UI_URL)"


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
