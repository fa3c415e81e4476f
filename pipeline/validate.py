"""Split a mapped chunk into the rows that load and the rows that go to quarantine.

The rules and their human reason texts live in the pandera schemas of ``schemas/clean.py``.
They are applied through pandera's public API only, in two parts:

* the contract (every column present, with its dtype) by pandera itself, validating the
  chunk's empty head: no row is judged there, so a failure is a ``ContractError``. The
  verdict depends only on the columns and dtypes, so it is kept per schema and layout;
* the rows, as vectorised masks: each column's null rule and its ``Check`` objects, called
  on the column, give the rows they reject, and the check's ``error`` text is the reason.

A lazy ``schema.validate`` of a whole chunk would say the same, but its error report costs
about 20 ms a chunk whatever the number of failing rows. A check whose verdict is not one
per row, or a schema with rules beyond these (uniqueness, frame-wide checks), is left to
``schema.validate(lazy=True)`` on the whole chunk, and its report read instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

#: One failure: (column, check identifier, failing value, row label), as pandera's
#: ``failure_cases`` report has them.
Case = tuple[Any, str, Any, Any]


class ContractError(Exception):
    """A whole chunk breaks the data contract (e.g. a required field is absent everywhere).

    Not a row problem to quarantine: the API changed or the wrong collection was read.
    """


def failed_checks(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> dict[Any, list[str]]:
    """Validate ``frame`` and return {row index -> reasons} for every failing row.

    Rows are in frame order; each row's reasons in schema column order, a column's null
    rule before its checks, in their order.

    Raises:
        ContractError: when a failure is not tied to rows (a missing column, a wrong dtype).
    """
    cases = _row_cases(frame, schema)
    if cases is None:
        return _reasons_by_row(_pandera_cases(frame, schema), frame)
    _check_contract(frame, schema)
    return _reasons_by_row(cases, frame)


def _pandera_cases(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> Iterable[Case]:
    """Every failure case of pandera's lazy report on ``frame``."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "failure_case", "index"]]
        return cases.itertuples(index=False)  # type: ignore[return-value]
    return []


#: Layouts (schema, columns and dtypes) whose empty frame pandera has accepted; the schema
#: is kept so that its id is not reused.
_ACCEPTED: dict[tuple[Any, ...], pa.DataFrameSchema] = {}


def _check_contract(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> None:
    layout = (id(schema), str(frame.index.dtype), *map(str, frame.columns), *map(str, frame.dtypes))
    if layout in _ACCEPTED:
        return
    _reasons_by_row(_pandera_cases(frame.iloc[:0], schema), frame)  # raises ContractError
    _ACCEPTED[layout] = schema


def _row_cases(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> list[Case] | None:
    """The rows each column rule rejects, or None when a rule is not judged per row here.

    None too for a missing column and for one whose dtype is not the column's own (pandera
    may test each value's type): pandera's whole report then says what is wrong.
    """
    if schema.checks or schema.unique or not frame.index.is_unique or not frame.columns.is_unique:
        return None
    cases: list[Case] = []
    for name, column in schema.columns.items():
        if column.unique or name not in frame.columns:
            return None
        series = frame[name]
        if column.coerce and column.dtype is not None:
            try:
                series = column.dtype.try_coerce(series)
            except Exception:  # pandera names the values it cannot coerce
                return None
        if column.dtype is not None and series.dtype != column.dtype.type:
            return None  # pandera may test each value's type: its report names the odd ones
        if not column.nullable:
            cases += [(name, "not_nullable", None, label) for label in series.index[series.isna()]]
        for check in column.checks:
            try:
                output = check(series).check_output
            except Exception:  # pandera reports the check's error
                return None
            if not isinstance(output, pd.Series) or not output.index.is_unique:
                return None  # one verdict for the whole column
            # A check that skips nulls gives no verdict for them: they pass it.
            failing = output.index[~output.fillna(False).astype(bool).to_numpy()]
            label = _check_identifier(check)
            values = series.loc[failing].tolist()  # Python values: "(got -2.0)"
            cases += [(name, label, v, idx) for v, idx in zip(values, failing, strict=True)]
    return cases


def _check_identifier(check: pa.Check) -> str:
    """How pandera's report names a failed ``Check``: its error text, else its name."""
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
