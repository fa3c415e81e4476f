"""Split a mapped chunk into the rows that load and the rows that go to quarantine.

The rules and their human reason texts live in the pandera schemas of ``schemas/clean.py``.
A lazy ``schema.validate`` spends about a third of its time building an error report
(SchemaErrors, consolidated failure-case frames, summaries) of which we only read four
columns, and that cost barely shrinks with the number of failing rows. So for the plain
schemas we use, :func:`failed_checks` runs the same pandera pieces column by column (the
column's dtype coercion and dtype test, the nullable rule, each ``Check`` object) and
collects the failure cases pandera would report, in the order it would report them.
Anything the fast path does not reproduce exactly goes through ``schema.validate(lazy=True)``
as before, so contract errors keep coming from pandera's own report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.api.checks import Check
from pandera.config import ValidationDepth, get_config_context
from pandera.engines.pandas_engine import Engine
from pandera.errors import SchemaErrors

#: One failure as pandera reports it: (column, check identifier, failing value, row label).
Case = tuple[Any, str, Any, Any]

# Settings the fast path reproduces exactly: pandera's defaults. A schema, column or check
# with any other setting (parsers, uniqueness, regex columns, strict, dataframe-level or
# grouped or warning-only checks...) is validated by pandera itself.
_PLAIN_SCHEMA: dict[str, Any] = {
    "checks": [],
    "parsers": [],
    "index": None,
    "dtype": None,
    "coerce": False,
    "strict": False,
    "ordered": False,
    "unique": None,
    "unique_column_names": False,
    "add_missing_columns": False,
    "drop_invalid_rows": False,
}
_PLAIN_COLUMN: dict[str, Any] = {
    "parsers": [],
    "regex": False,
    "required": True,
    "unique": False,
    "default": None,
    "drop_invalid_rows": False,
}


class ContractError(Exception):
    """A whole chunk breaks the data contract (e.g. a required field is absent everywhere).

    Not a row problem to quarantine: the API changed or the wrong collection was read.
    """


def failed_checks(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> dict[Any, list[str]]:
    """Validate ``frame`` lazily and return {row index -> reasons} for every failing row.

    Rows are in frame order; each row's reasons are in the order pandera reports them
    (schema column order, then the null rule before the column's checks in their order).

    Raises:
        ContractError: when a failure is not tied to rows (a missing column, a wrong dtype).
    """
    cases = _fast_failure_cases(frame, schema)
    return _reasons_by_row(_pandera_failure_cases(frame, schema) if cases is None else cases, frame)


def _pandera_failure_cases(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> Iterable[Case]:
    """Every failure case of pandera's full lazy report (the general, slower path)."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "failure_case", "index"]]
        return cases.itertuples(index=False)  # type: ignore[return-value]
    return []


def _fast_failure_cases(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> list[Case] | None:
    """The failure cases pandera would report for ``frame``, without its lazy report.

    Returns None when the schema, the frame or a result is outside what this path mirrors
    exactly (non-default settings, a missing column, a failed dtype test or coercion, a
    check that errors or does not give one verdict per row); the caller then asks pandera.
    Only row-tied failures are possible here, so a contract error always takes that route.
    """
    index = frame.index
    config = get_config_context()
    if not (
        _is_plain(schema, _PLAIN_SCHEMA)
        and config.validation_enabled
        and config.validation_depth in (None, ValidationDepth.SCHEMA_AND_DATA)
        and not config.use_narwhals_backend
        and frame.columns.is_unique
        # Row labels become dict keys as they are: no tuples, no null labels, no repeats.
        and not isinstance(index, pd.MultiIndex)
        and index.is_unique
        and not index.hasnans
    ):
        return None
    # (column, check identifier, failing values by row label), in pandera's report order.
    pieces: list[tuple[Any, str, pd.Series]] = []
    for name, column in schema.columns.items():
        if name not in frame.columns or not _is_plain(column, _PLAIN_COLUMN):
            return None
        series = frame[name]
        try:
            # Same coercion and dtype test as pandera's DataFrame and column backends.
            if column.coerce and column.dtype is not None:
                series = column.dtype.try_coerce(series)
            if column.dtype is not None and not _dtype_matches(column, series):
                return None
        except Exception:
            return None
        if not column.nullable and series.hasnans:
            pieces.append((name, "not_nullable", series[series.isna()]))
        for check in column.checks:
            failing = _rejected_values(check, series)
            if failing is None:
                return None
            if len(failing):
                pieces.append((name, _check_identifier(check), failing))
    if not pieces:
        return []
    # pandera concatenates the failing values of all checks into one column, which decides
    # their type (an int beside floats becomes a float): concatenate them the same way so
    # "(got ...)" shows the same value.
    values = pd.concat([piece.rename("failure_case").to_frame() for _, _, piece in pieces])
    columns = [name for name, _, piece in pieces for _ in range(len(piece))]
    checks = [check for _, check, piece in pieces for _ in range(len(piece))]
    labels = [label for _, _, piece in pieces for label in piece.index.tolist()]
    return list(zip(columns, checks, values["failure_case"], labels, strict=True))


def _rejected_values(check: Check, series: pd.Series) -> pd.Series | None:
    """The values of ``series`` (by row label) that ``check`` rejects, as pandera reports them.

    Calls the Check itself, which applies pandera's own rules (nulls skipped when the check
    ignores them, element-wise checks, capped failure cases). None when the result is not
    tied to rows (the check errors, gives one verdict for the whole column, or only warns):
    pandera turns those into contract errors, so the caller asks pandera.
    """
    if check.raise_warning or check.groupby is not None:
        return None
    try:
        result = check(series)
    except Exception:
        return None
    if result.check_passed:
        return series.iloc[:0]
    if not isinstance(result.failure_cases, pd.Series):
        return None
    # Like pandera's report: a check that ignores nulls never reports a null value.
    return result.failure_cases.dropna() if check.ignore_na else result.failure_cases


def _dtype_matches(column: pa.Column, series: pd.Series) -> bool:
    """pandera's dtype test: one verdict for the column, or one per value (all must pass)."""
    verdict = column.dtype.check(Engine.dtype(series.dtype), series)
    return verdict if isinstance(verdict, bool) else bool(np.asarray(verdict).all())


def _is_plain(obj: Any, defaults: Mapping[str, Any]) -> bool:
    return all(getattr(obj, key) == value for key, value in defaults.items())


def _check_identifier(check: Check) -> str:
    """The ``check`` column value pandera's report gives a failed ``Check``."""
    if check.error is not None:
        return str(check.error)
    return str(check.name) if check.name is not None else str(check)


def _reasons_by_row(cases: Iterable[Case], frame: pd.DataFrame) -> dict[Any, list[str]]:
    reasons: dict[Any, list[str]] = {}
    for column, check, value, idx in cases:
        if pd.isna(idx):
            raise ContractError(
                f"check {check!r} failed for the whole chunk (column {column!r}, {value!r}): "
                "the mapped data no longer matches the warehouse contract; check the Finale "
                "field names and the entity's mapping in pipeline/entities.py"
            )
        if check == "not_nullable":
            text = f"{column} is missing"
        elif check.startswith(column):
            text = check
        else:
            text = f"{column}: {check}"
        if not pd.isna(value) and check != "not_nullable":
            text += f" (got {value!r})"
        reasons.setdefault(idx, []).append(text)
    # Keep reasons in frame order so quarantine rows are stable across runs.
    if not reasons:
        return reasons
    failing = list(reasons)
    if frame.index.is_unique:
        # Positions of the failing rows only (a dict of the whole index cost more than
        # the validation's own checks); -1, an index not in the frame, sorts first.
        found = frame.index.get_indexer(failing)
        position = dict(zip(failing, found.clip(min=0).tolist(), strict=True))
    else:
        position = {idx: pos for pos, idx in enumerate(frame.index)}
    return dict(sorted(reasons.items(), key=lambda item: position.get(item[0], 0)))


def merge_reasons(*sources: Mapping[Any, list[str]]) -> dict[Any, list[str]]:
    """Union several {row index -> reasons} maps, keeping each reason once."""
    merged: dict[Any, list[str]] = {}
    for source in sources:
        for idx, texts in source.items():
            bucket = merged.setdefault(idx, [])
            bucket.extend(t for t in texts if t not in bucket)
    return merged
