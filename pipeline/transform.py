"""Raw Finale chunk -> validated warehouse frames + quarantine records, for any entity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectors.finale.columnar import decode_deferred
from pipeline.entities import EntitySpec, order_totals
from pipeline.mapping import TransformContext, apply_mapping
from pipeline.validate import failed_checks, merge_reasons

#: Columns the loader maintains itself; transforms never produce them.
BOOKKEEPING_COLUMNS = frozenset({"content_hash", "deleted_at", "synced_at"})


@dataclass
class QuarantineRecord:
    """A raw record that did not load, with the reasons and the record as Finale sent it."""

    source_key: str | None
    reasons: list[str]
    payload: dict[str, Any]


@dataclass
class ChunkResult:
    """The outcome of transforming one raw chunk.

    Attributes:
        frames: warehouse table name -> rows to load (business columns only).
        quarantined: the records that failed, with reasons.
        extracted: raw rows of the chunk that belong to the entity.
    """

    frames: dict[str, pd.DataFrame]
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    extracted: int = 0


def business_columns(table: Any) -> list[str]:
    """The columns of ``table`` a transform fills (all but the loader's bookkeeping)."""
    return [c.name for c in table.columns if c.name not in BOOKKEEPING_COLUMNS]


def transform_chunk(spec: EntitySpec, raw: pd.DataFrame, ctx: TransformContext) -> ChunkResult:
    """Select, map, validate and split one raw chunk of ``spec``'s collection.

    Nothing is dropped silently: every selected raw row ends up either in ``frames`` or in
    ``quarantined``, so ``extracted == len(main frame) + len(quarantined)``.
    """
    if spec.select is not None and len(raw):
        raw = raw[spec.select(raw)]
    raw = raw.reset_index(drop=True)
    frame, problems = apply_mapping(raw, spec.mapping, ctx)

    child_frame = None
    if spec.child is not None:
        exploded = spec.child.explode(raw, ctx)
        child_frame, child_parse = apply_mapping(exploded, spec.child.mapping, ctx)
        child_frame["parent"] = exploded["parent"]
        child_problems = merge_reasons(child_parse, failed_checks(child_frame, spec.child.schema))
        problems = merge_reasons(problems, _lift_to_parent(child_problems, exploded))
        frame = order_totals(frame, raw, child_frame)
    problems = merge_reasons(problems, failed_checks(frame, spec.schema))

    bad = list(problems)  # labels of raw's RangeIndex, i.e. row positions
    keys = spec.source_key(raw)
    payloads = raw.take(bad).to_dict("records")  # one pass, not one .loc lookup per row
    quarantined = [
        QuarantineRecord(
            source_key=_source_key(spec, keys, frame, idx),
            reasons=problems[idx],
            payload={k: decode_deferred(v) for k, v in payload.items()},
        )
        for idx, payload in zip(bad, payloads, strict=True)
    ]
    keep = np.ones(len(frame), dtype=bool)
    keep[bad] = False
    good = frame[keep]
    columns = list(spec.output_columns or business_columns(spec.table))
    frames = {spec.table.name: good[columns].reset_index(drop=True)}
    if spec.child is not None and child_frame is not None:
        kept = child_frame[~child_frame["parent"].isin(bad)]
        child_columns = business_columns(spec.child.table)
        frames[spec.child.table.name] = kept[child_columns].reset_index(drop=True)
    return ChunkResult(frames=frames, quarantined=quarantined, extracted=len(raw))


def _lift_to_parent(child_problems: dict[Any, list[str]], exploded: pd.DataFrame) -> dict:
    lifted: dict[Any, list[str]] = {}
    for idx, texts in child_problems.items():
        parent = exploded.at[idx, "parent"]
        line = exploded.at[idx, "lineNo"]
        lifted.setdefault(parent, []).extend(f"line {line}: {t}" for t in texts)
    return lifted


def _source_key(spec: EntitySpec, keys: pd.Series, frame: pd.DataFrame, idx: Any) -> str | None:
    key = keys.at[idx] if idx in keys.index else None
    key = None if key is None or (isinstance(key, float) and pd.isna(key)) else str(key)
    if spec.name == "stock":
        # A stock row is a product at a facility: name both, as the quarantine contract says.
        facility = frame.at[idx, "facility_id"]
        return f"{key}@{facility if isinstance(facility, str) else '?'}"
    return key
