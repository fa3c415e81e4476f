"""Each entity's ``expected_interval`` is what prefect.yaml schedules for it.

Sync health measures freshness against the spec's interval; the schedules live in
prefect.yaml. This keeps the two from drifting apart: the interval is the longest wait
between two runs of the fastest scheduled deployment that syncs the entity.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cronsim import CronSim

from pipeline.entities import APP_ENTITIES, ENTITIES

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"
#: The sync flows, each with the entities it runs when a deployment names none.
SYNC_FLOWS = {
    "flows/finale_sync.py:finale_sync": ENTITIES,
    "flows/finale_sync.py:supabase_sync": APP_ENTITIES,
}


def _longest_gap(cron: str) -> timedelta:
    """The longest time between two consecutive fire times over two weeks."""
    start = datetime(2026, 1, 5, tzinfo=UTC)
    fires = itertools.takewhile(lambda t: t <= start + timedelta(days=14), CronSim(cron, start))
    return max(b - a for a, b in itertools.pairwise(fires))


def _scheduled_intervals() -> dict[str, timedelta]:
    deployments: list[dict[str, Any]] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    fastest: dict[str, timedelta] = {}
    for deployment in deployments:
        default = SYNC_FLOWS.get(deployment["entrypoint"])
        if default is None:
            continue
        entities = deployment.get("parameters", {}).get("entities") or list(default)
        for schedule in deployment.get("schedules", []):
            gap = _longest_gap(schedule["cron"])
            for entity in entities:
                fastest[entity] = min(gap, fastest.get(entity, gap))
    return fastest


# Named by entity: ``str(spec)`` holds object addresses, which differ between pytest-xdist
# workers (and their collections must agree).
@pytest.mark.parametrize(
    "spec", [*ENTITIES.values(), *APP_ENTITIES.values()], ids=lambda spec: spec.name
)
def test_expected_interval_is_the_fastest_schedule_that_syncs_the_entity(spec: Any) -> None:
    scheduled = _scheduled_intervals()

    assert spec.name in scheduled, f"no deployment in prefect.yaml syncs {spec.name} on a schedule"
    assert spec.expected_interval == scheduled[spec.name]


def test_the_gap_of_a_cron_is_measured_between_fire_times() -> None:
    assert _longest_gap("*/15 * * * *") == timedelta(minutes=15)
    assert _longest_gap("5 * * * *") == timedelta(hours=1)
    assert _longest_gap("30 2 * * 1-5") == timedelta(days=3)  # Friday to Monday
