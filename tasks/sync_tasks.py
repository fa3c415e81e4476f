"""Thin Prefect tasks over ``pipeline.sync``: one task per chunk and one per step.

The work lives in plain functions and classes (``pipeline/``); these wrappers give each
chunk a task run in the Prefect UI, with retries for a chunk whose transaction failed
(safe: the transaction rolled back, and the load is an idempotent upsert).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.sync import Chunk, EntityRunResult, EntitySync


@task(
    name="load-chunk",
    task_run_name="{sync.spec.name}-chunk",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
)
def process_chunk(sync: EntitySync, chunk: Chunk) -> dict[str, int]:
    """Validate, transform and load one chunk, committing it with its watermark."""
    outcome = sync.process(chunk)
    main = outcome.frames[sync.spec.table.name]
    return {
        "extracted": outcome.extracted,
        "valid": len(main),
        "quarantined": len(outcome.quarantined),
    }


@task(name="finish-entity", task_run_name="{sync.spec.name}-finish", cache_policy=NO_CACHE)
def finish_entity(sync: EntitySync) -> EntityRunResult:
    """Deletions, reconciliation, quarantine judgement and the run record."""
    return sync.finish()
