"""The data-quality thresholds: one TOML file, validated on load, with documented defaults.

The file (``config/dq.toml``, or the path in ``DQ_CONFIG``) has three parts::

    sync_checks = ["row_count", ...]     # the checks a sync runs after loading an entity

    [defaults]                           # thresholds for every entity
    max_open_quarantine_share = 0.05

    [entities.products]                  # overrides for one entity
    max_data_age_hours = 168

Every key is optional: a missing one takes its default (``Thresholds``). An unknown key,
an unknown entity or column, or a value out of range is refused with a ``DQConfigError``
that names the file and the key (``entities.products.max_row_drop``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from invsync.settings import ConfigError
from pipeline.entities import APP_ENTITIES, ENTITIES, entity_spec

#: The project's thresholds file, used when ``DQ_CONFIG`` is not set.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "dq.toml"

#: Every check, in report order (``pipeline.dq.checks``).
CHECK_NAMES = (
    "row_count",
    "row_change",
    "completeness",
    "uniqueness",
    "validity",
    "referential",
    "data_freshness",
    "sync_freshness",
    "quarantine",
    "reconciliation",
)

#: The checks a sync runs by default: all but the two that scan whole tables with joins
#: or GROUP BY (``uniqueness``, ``referential``) and ``data_freshness`` (how recently
#: Finale's records changed does not change with a sync), which the daily report runs.
DAILY_ONLY_CHECKS = ("uniqueness", "referential", "data_freshness")
DEFAULT_SYNC_CHECKS = tuple(c for c in CHECK_NAMES if c not in DAILY_ONLY_CHECKS)


class DQConfigError(ConfigError):
    """The thresholds file is missing, unreadable or has a bad key; the message names it."""


class Thresholds(BaseModel):
    """The thresholds of one entity; each field is a key of ``[defaults]``/``[entities.X]``.

    Attributes:
        min_rows: ``row_count`` fails below this many live rows.
        max_row_drop: ``row_change`` fails when live rows fell by more than this share
            since the previous measurement (0.5: lost more than half).
        min_completeness: ``completeness``: the share of non-null values each checked
            column (the primary key, the spec's ``unique_columns``) must reach.
        min_completeness_by_column: per column, a share overriding ``min_completeness``;
            a column named here is checked even when it is not a key or a reference.
        max_duplicates: ``uniqueness``: surplus rows allowed per unique column set (the
            key, and the spec's ``unique_columns``).
        max_invalid_share: ``validity``: the share of the entity's records (live rows plus
            open quarantine) one pandera rule may fail.
        max_orphan_share: ``referential``: the share of a reference column's non-null
            values allowed to name no row of the entity referred to.
        max_data_age_hours: ``data_freshness``: the newest ``last_updated_at`` may be at
            most this old (some catalogues change rarely: raise it per entity).
        max_sync_age_intervals: ``sync_freshness``: the last successful sync may be at most
            this many ``expected_interval``s old.
        max_open_quarantine_share: ``quarantine``: open quarantine records over the
            entity's records (live rows plus open quarantine).
        require_reconciled: ``reconciliation``: the last full run must have matched
            source and warehouse counts and checksums.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rows: int = Field(default=1, ge=0)
    max_row_drop: float = Field(default=0.5, ge=0, le=1)
    min_completeness: float = Field(default=1.0, ge=0, le=1)
    min_completeness_by_column: dict[str, float] = Field(default_factory=dict)
    max_duplicates: int = Field(default=0, ge=0)
    max_invalid_share: float = Field(default=0.05, ge=0, le=1)
    max_orphan_share: float = Field(default=0.0, ge=0, le=1)
    max_data_age_hours: float = Field(default=720.0, gt=0)
    max_sync_age_intervals: float = Field(default=2.0, gt=0)
    max_open_quarantine_share: float = Field(default=0.05, ge=0, le=1)
    require_reconciled: bool = True


@dataclass(frozen=True)
class DQConfig:
    """The loaded thresholds: ``thresholds(entity)`` is what the checks compare against.

    Attributes:
        source: where they came from (a path, or "built-in defaults").
        sync_checks: the checks a sync runs after loading an entity.
        defaults: the ``[defaults]`` thresholds.
        entities: per entity, the defaults with its own overrides applied.
    """

    source: str = "built-in defaults"
    sync_checks: tuple[str, ...] = DEFAULT_SYNC_CHECKS
    defaults: Thresholds = field(default_factory=Thresholds)
    entities: Mapping[str, Thresholds] = field(default_factory=dict)

    def thresholds(self, entity: str) -> Thresholds:
        """The thresholds of ``entity``."""
        return self.entities.get(entity, self.defaults)


def load_dq_config(path: Path | str | None = None) -> DQConfig:
    """Read and validate the thresholds file.

    Args:
        path: the file (``DQ_CONFIG``); None = ``config/dq.toml`` of the project, or the
            built-in defaults when the project has none (an installed package).

    Raises:
        DQConfigError: naming the file and the bad key, or saying why it cannot be read.
    """
    if path is None:
        if not DEFAULT_CONFIG_PATH.is_file():
            return DQConfig()
        path = DEFAULT_CONFIG_PATH
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DQConfigError(f"DQ_CONFIG: no thresholds file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DQConfigError(f"DQ_CONFIG: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DQConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_dq_config(raw, source=str(path))


def parse_dq_config(raw: Mapping[str, Any], source: str = "thresholds") -> DQConfig:
    """Validate the parsed TOML of a thresholds file (see ``load_dq_config``).

    Raises:
        DQConfigError: naming ``source`` and the bad key.
    """
    unknown = sorted(set(raw) - {"sync_checks", "defaults", "entities"})
    if unknown:
        raise DQConfigError(
            f"{source}: unknown key {unknown[0]!r}; expected sync_checks, [defaults], [entities.*]"
        )
    sync_checks = raw.get("sync_checks", list(DEFAULT_SYNC_CHECKS))
    if not isinstance(sync_checks, list) or not all(isinstance(c, str) for c in sync_checks):
        raise DQConfigError(f"{source}: sync_checks must be a list of check names")
    for name in sync_checks:
        if name not in CHECK_NAMES:
            raise DQConfigError(
                f"{source}: sync_checks: unknown check {name!r}; choose from "
                f"{', '.join(CHECK_NAMES)}"
            )
    defaults_raw = _table(raw, "defaults", source)
    if "min_completeness_by_column" in defaults_raw:
        raise DQConfigError(
            f"{source}: defaults.min_completeness_by_column: columns differ per entity; "
            "set it under [entities.<entity>.min_completeness_by_column]"
        )
    defaults = _thresholds(defaults_raw, "defaults", source)
    entities_raw = _table(raw, "entities", source)
    entities: dict[str, Thresholds] = {}
    for name, overrides in entities_raw.items():
        if name not in ENTITIES and name not in APP_ENTITIES:
            known = ", ".join([*ENTITIES, *APP_ENTITIES])
            raise DQConfigError(f"{source}: entities.{name}: unknown entity; choose from {known}")
        prefix = f"entities.{name}"
        if not isinstance(overrides, Mapping):
            raise DQConfigError(f"{source}: {prefix} must be a table of thresholds")
        merged = {**defaults_raw, **overrides}
        thresholds = _thresholds(merged, prefix, source, own=set(overrides))
        table = entity_spec(name).table
        columns = {c.name for c in table.columns}
        for column in thresholds.min_completeness_by_column:
            if column not in columns:
                raise DQConfigError(
                    f"{source}: {prefix}.min_completeness_by_column.{column}: "
                    f"{table.name} has no such column"
                )
        entities[name] = thresholds
    return DQConfig(
        source=source, sync_checks=tuple(sync_checks), defaults=defaults, entities=entities
    )


def _table(raw: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise DQConfigError(f"{source}: {key} must be a table ([{key}])")
    return dict(value)


def _thresholds(
    values: Mapping[str, Any], prefix: str, source: str, own: set[str] | None = None
) -> Thresholds:
    """Validate ``values``; an error names the key under ``prefix`` (or ``defaults`` when
    the bad value was inherited from there)."""
    try:
        return Thresholds(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(part) for part in err["loc"]]
        where = prefix if own is None or (loc and loc[0] in own) else "defaults"
        key = ".".join([where, *loc])
        problem = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise DQConfigError(f"{source}: {key}: {problem}") from None
