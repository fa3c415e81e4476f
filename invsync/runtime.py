"""Process-wide settings, made once at the project's own entry points (the CLI, benchmarks).

Library code (``pipeline``, ``warehouse``, ``connectors``) never changes process state: a
worker or a notebook that imports it keeps its own settings.
"""

from __future__ import annotations

import gc

#: Allocations between two collections of the youngest generation (CPython's default: 700).
#: A sync allocates millions of short-lived, acyclic objects (parsed JSON, pandas and Arrow
#: buffers) that reference counting frees; at 700 the collector keeps rescanning the chunks
#: being parsed and promotes what is still alive, which the older generations then rescan.
#: Measured (benchmarks/RESULTS.md, issue 10), a full sync of 1M products into PostgreSQL:
#: 0.26x the COPY bound at 700, 0.33x at 50,000, 0.36x at 500,000 (0.39x with no
#: collector at all); peak memory unchanged, since the engine makes no large cycles.
YOUNG_GENERATION_THRESHOLD = 500_000


def tune_garbage_collector() -> None:
    """Collect the youngest generation every ``YOUNG_GENERATION_THRESHOLD`` allocations.

    The older generations keep their thresholds, so the (rare) cyclic garbage is still
    collected as often relative to them.
    """
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


def freeze_objects_before_exit() -> None:
    """Move every live object out of the cyclic collector's reach as the process ends.

    The interpreter's teardown runs full collections over every object still alive (the
    modules of Prefect, pandas and SQLAlchemy: about 0.3 s of a two-second command,
    benchmarks/run_overhead.py). Frozen objects are skipped by those collections; reference
    counting still frees them, and exit handlers (Prefect flushing its logs) still run.
    """
    gc.freeze()
