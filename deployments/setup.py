"""``invsync setup``: create what the deployments in prefect.yaml expect on the Prefect server.

- the ``inventory-sync`` process work pool the deployments run on;
- the ``finale-api`` global concurrency limit, used as a rate limit (slots decay at the
  Finale request rate), shared by every run and worker on top of each client's own limiter.

Idempotent: running it again updates the limit to the current settings.
"""

from __future__ import annotations

from typing import Any

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from invsync.settings import Settings

WORK_POOL = "inventory-sync"


def shared_rate_limit(settings: Settings) -> tuple[int, float]:
    """(slots, decay per second) for FINALE_RATE_LIMIT_PER_MINUTE across all workers."""
    per_second = settings.finale_rate_limit_per_minute / 60.0
    return max(1, round(per_second)), per_second


def setup_prefect(settings: Settings, work_pool: str = WORK_POOL) -> dict[str, Any]:
    """Create (or update) the work pool and the shared Finale rate limit.

    Returns:
        What was set up: {"work_pool", "work_pool_created", "rate_limit": {...}}.
    """
    slots, decay = shared_rate_limit(settings)
    created = False
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=work_pool, type="process"))
            created = True
        except ObjectAlreadyExists:
            pass
        name = settings.finale_shared_rate_limit
        if name:
            client.upsert_global_concurrency_limit_by_name(
                name, limit=slots, slot_decay_per_second=decay
            )
    return {
        "work_pool": work_pool,
        "work_pool_created": created,
        "rate_limit": {
            "name": settings.finale_shared_rate_limit,
            "slots": slots,
            "slot_decay_per_second": decay,
        },
    }
