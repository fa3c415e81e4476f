"""Split a mapped chunk into the rows that load and the rows that go to quarantine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors


class ContractError(Exception):
    """A whole chunk breaks the data contract (e.g. a required field is absent everywhere).

    Not a row problem to quarantine: the API changed or the wrong collection was read.
    """


def failed_checks(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> dict[Any, list[str]]:
    """Validate ``frame`` lazily and return {row index -> reasons} for every failing row.

    Raises:
        ContractError: when a failure is not tied to rows (a missing column, a wrong dtype).
    """
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        return _reasons_by_row(exc.failure_cases, frame)
    return {}


def _reasons_by_row(cases: pd.DataFrame, frame: pd.DataFrame) -> dict[Any, list[str]]:
    reasons: dict[Any, list[str]] = {}
    for column, check, value, idx in cases[["column", "check", "failure_case", "index"]].itertuples(
        index=False
    ):
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
