"""The Prefect global concurrency limit the flows draw Finale requests from.

``invsync setup`` (``deployments/setup.py``) creates the limit; the flows only ask whether it
exists, so a run without it keeps to each client's own limiter and pays no round trip.
"""

from __future__ import annotations

from functools import lru_cache

from prefect import get_client
from prefect.exceptions import ObjectNotFound


@lru_cache(maxsize=16)
def shared_limit_exists(name: str, flow_run_id: str) -> bool:
    """Whether the global concurrency limit ``name`` exists on the Prefect server.

    Asked once per flow run (``flow_run_id``), not by each of its Finale clients: a run
    opens one per entity, and the limit is set up before runs start.
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True
