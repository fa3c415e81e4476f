"""Data-quality checks per entity, their thresholds file, and what a report is made of.

- ``load_dq_config(path)``: the thresholds (``config/dq.toml`` or ``DQ_CONFIG``), validated;
- ``measure(conn, config, report_id=...)``: run the checks, get ``CheckResult``s;
- results are stored in ``dq_results`` (``warehouse.dq``) and exported to the analytics
  dataset (``analytics.dataset``).
"""

from pipeline.dq.checks import CHECKS, measure
from pipeline.dq.config import (
    CHECK_NAMES,
    DEFAULT_SYNC_CHECKS,
    DQConfig,
    DQConfigError,
    Thresholds,
    load_dq_config,
    parse_dq_config,
)
from warehouse.dq import CheckResult

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "DEFAULT_SYNC_CHECKS",
    "CheckResult",
    "DQConfig",
    "DQConfigError",
    "Thresholds",
    "load_dq_config",
    "measure",
    "parse_dq_config",
]
