"""The hand-off to analytics: a partitioned Parquet dataset under ``ANALYTICS_URL``."""

from analytics.dataset import (
    DQ_RESULTS,
    DQ_RESULTS_SCHEMA,
    SYNC_RUNS,
    SYNC_RUNS_SCHEMA,
    AnalyticsLocationError,
    Location,
    Written,
    days_between,
    open_location,
    read_dataset,
    write_partitions,
)

__all__ = [
    "DQ_RESULTS",
    "DQ_RESULTS_SCHEMA",
    "SYNC_RUNS",
    "SYNC_RUNS_SCHEMA",
    "AnalyticsLocationError",
    "Location",
    "Written",
    "days_between",
    "open_location",
    "read_dataset",
    "write_partitions",
]
