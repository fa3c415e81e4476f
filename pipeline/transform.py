"""Raw Finale chunk -> validated warehouse frames + quarantine records, for any entity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectors.finale.columnar import decode_deferred
from pipeline.entities import EntitySpec
from pipeline.mapping import (
    ListColumn,
    Timestamp,
    TransformContext,
    apply_mapping,
    list_problems,
    shown,
)
from pipeline.validate import failed_checks, merge_reasons
from warehouse.canonical import business_columns


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
        identities: per row of the main frame, a 64-bit hash of the record's identity in
            the read (see ``EntitySpec.identity_fields``), to find a record read twice
            across chunks.
        raw: the chunk's raw records that belong to the entity, as read.
        raw_rows: per row of the main frame, the position of its raw record in ``raw``
            (its ``source_keys``, and the payload should it be quarantined later).
        quarantined_keys: the mapped primary keys of the quarantined records, where they
            are known: such a record still exists in Finale (not deleted), and for a
            summed entity its key's total would be incomplete (held back).
    """

    frames: dict[str, pd.DataFrame]
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    extracted: int = 0
    identities: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    raw: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    raw_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    quarantined_keys: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def payloads(self) -> pd.DataFrame:
        """Per row of the main frame, its raw record (taken when asked for: only a run with
        quarantine entries or duplicates needs them)."""
        return self.raw.take(self.raw_rows).reset_index(drop=True)

    def source_keys(self, spec: EntitySpec) -> list[str | None]:
        """The ``quarantine.source_key`` of each row of the main frame (computed on demand:
        only a run with open quarantine entries, or duplicates, needs them)."""
        return spec.source_key(self.payloads).tolist()

    def quarantine_rows(self, spec: EntitySpec, rows: np.ndarray, reason: str) -> ChunkResult:
        """This result with the main-frame ``rows`` (a mask) moved to quarantine.

        Their child rows go too, so a record is loaded whole or not at all.
        """
        main = self.frames[spec.table.name]
        keep = ~rows
        frames = {spec.table.name: main[keep].reset_index(drop=True)}
        if spec.child is not None:
            key = spec.key_columns[0]
            gone = set(main.loc[rows, key].tolist())
            child = self.frames[spec.child.table.name]
            frames[spec.child.table.name] = child[~child[key].isin(gone)].reset_index(drop=True)
        gone = self.raw.take(self.raw_rows[rows])
        moved = [
            QuarantineRecord(source_key=key, reasons=[reason], payload=_payload(payload))
            for key, payload in zip(
                spec.source_key(gone).tolist(), gone.to_dict("records"), strict=True
            )
        ]
        moved_keys = main.loc[rows, spec.key_columns].itertuples(index=False, name=None)
        return ChunkResult(
            frames=frames,
            quarantined=[*self.quarantined, *moved],
            quarantined_keys=[*self.quarantined_keys, *moved_keys],
            extracted=self.extracted,
            identities=self.identities[keep],
            raw=self.raw,
            raw_rows=self.raw_rows[keep],
        )


def transform_chunk(spec: EntitySpec, raw: pd.DataFrame, ctx: TransformContext) -> ChunkResult:
    """Select, map, validate and split one raw chunk of ``spec``'s collection.

    Nothing is dropped silently: every selected raw row ends up either in ``frames`` or in
    ``quarantined``, so ``extracted == len(main frame) + len(quarantined)``. No value in a
    record can make this raise: what cannot be taken is a reason to quarantine that record.
    """
    if spec.select is not None and len(raw):
        raw = raw[spec.select(raw)]
    raw = raw.reset_index(drop=True)
    lists: dict[str, ListColumn] = {}  # the list fields, flattened once for both steps
    frame, problems = apply_mapping(raw, spec.mapping, ctx, lists)
    problems = merge_reasons(problems, list_problems(raw, spec.lists, lists))

    child_frame = None
    if spec.child is not None:
        exploded = spec.child.explode(raw, ctx)
        child_frame, child_parse = apply_mapping(exploded, spec.child.mapping, ctx)
        child_frame["parent"] = exploded["parent"]
        child_problems = merge_reasons(child_parse, failed_checks(child_frame, spec.child.schema))
        problems = merge_reasons(problems, _lift_to_parent(child_problems, exploded))
        if spec.child.finalise is not None:
            frame = spec.child.finalise(frame, raw, child_frame)
    problems = merge_reasons(
        problems,
        failed_checks(frame, spec.schema),
        _missing_cursor(spec, frame, problems),
        *(_reasons(check(frame)) for check in spec.row_checks),
    )
    identity = _identities(spec, raw, frame)
    problems = merge_reasons(problems, _duplicates(spec, identity))

    bad = list(problems)  # labels of raw's RangeIndex, i.e. row positions
    bad_raw = raw.take(bad)
    quarantined = [
        QuarantineRecord(source_key=key, reasons=problems[idx], payload=_payload(payload))
        for idx, key, payload in zip(
            bad, spec.source_key(bad_raw).tolist(), bad_raw.to_dict("records"), strict=True
        )
    ]
    keep = np.ones(len(frame), dtype=bool)
    keep[bad] = False
    main = frame[spec.loading.columns(spec.table)]
    frames = {spec.table.name: (main[keep] if bad else main).reset_index(drop=True)}
    if spec.child is not None and child_frame is not None:
        kept = child_frame[~child_frame["parent"].isin(bad)]
        child_columns = [c.name for c in business_columns(spec.child.table)]
        frames[spec.child.table.name] = kept[child_columns].reset_index(drop=True)
    known = frame.loc[bad, spec.key_columns].dropna()
    return ChunkResult(
        frames=frames,
        quarantined=quarantined,
        quarantined_keys=list(known.itertuples(index=False, name=None)),
        extracted=len(raw),
        identities=_hashes(identity)[keep],
        raw=raw,
        raw_rows=np.flatnonzero(keep),
    )


def _payload(record: dict[str, Any]) -> dict[str, Any]:
    return {k: decode_deferred(v) for k, v in record.items()}


def _lift_to_parent(child_problems: dict[Any, list[str]], exploded: pd.DataFrame) -> dict:
    lifted: dict[Any, list[str]] = {}
    for idx, texts in child_problems.items():
        parent = exploded.at[idx, "parent"]
        line = exploded.at[idx, "lineNo"]
        lifted.setdefault(parent, []).extend(f"line {line}: {t}" for t in texts)
    return lifted


def _reasons(per_row: pd.Series) -> dict[Any, list[str]]:
    """{row -> [reason]} from a Series holding a reason or None per row."""
    return {idx: [text] for idx, text in per_row.dropna().items()}


def _missing_cursor(
    spec: EntitySpec, frame: pd.DataFrame, problems: dict[Any, list[str]]
) -> dict[Any, list[str]]:
    """Rows with no cursor timestamp: they cannot be placed on the watermark.

    (An unparseable one is already reported by its ``Timestamp`` rule.)
    """
    targets = [
        target
        for target, rule in spec.mapping.items()
        if isinstance(rule, Timestamp) and rule.source == spec.cursor_field
    ]
    out: dict[Any, list[str]] = {}
    for target in targets:
        for idx in frame.index[frame[target].isna().to_numpy()].tolist():
            if not any(reason.startswith(f"{target} ") for reason in problems.get(idx, ())):
                out[idx] = [
                    f"{target} (field {spec.cursor_field}) is missing, so the record cannot "
                    "be placed on the watermark"
                ]
    return out


#: Separates identity parts in the text that is hashed (never part of a Finale id).
_PART_SEPARATOR = "\x1f"


def _identities(spec: EntitySpec, raw: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    """Per row, the text that identifies the record in a read (None: no usable key).

    The mapped primary key by default (so " A-1 " and "A-1", which load as one row, are
    one identity); the raw ``identity_fields`` where the key is an aggregate (stock).
    """
    if spec.identity_fields is None:
        if len(spec.key_columns) == 1:  # the usual case: the key column itself
            return frame[spec.key_columns[0]]
        parts = [frame[c].astype(object) for c in spec.key_columns]
        usable = pd.concat([p.notna() for p in parts], axis=1).all(axis=1)
    else:
        parts = [
            raw.get(f, pd.Series(None, index=raw.index, dtype=object)).map(repr)
            for f in spec.identity_fields
        ]
        usable = pd.Series(True, index=raw.index)
    text = parts[0].astype(str)
    for part in parts[1:]:
        text = text + _PART_SEPARATOR + part.astype(str)
    return text.astype(object).where(usable)


def _hashes(identity: pd.Series) -> np.ndarray:
    """64-bit hashes of identity texts (unique keys: no factorising first, ~4x faster)."""
    return pd.util.hash_array(identity.to_numpy(dtype=object), categorize=False)


def _duplicates(spec: EntitySpec, identity: pd.Series) -> dict[Any, list[str]]:
    """Every record whose identity another record of the chunk shares (all of them)."""
    repeated = identity.notna() & identity.duplicated(keep=False)
    if not repeated.any():
        return {}
    counts = identity[repeated].value_counts()
    what = duplicate_label(spec)
    return {
        idx: [
            f"{what} appears more than once in this read (got {shown(_shown_identity(value))}, "
            f"{counts[value]} records); none of them is loaded"
        ]
        for idx, value in identity[repeated].items()
    }


def duplicate_label(spec: EntitySpec) -> str:
    """How a duplicate's identity is named in its quarantine reason."""
    if spec.identity_fields is None:
        return "key " + ", ".join(spec.key_columns)
    return "entry identity (" + ", ".join(spec.identity_fields) + ")"


def _shown_identity(value: str) -> str:
    return value.replace(_PART_SEPARATOR, " | ")


class SeenIdentities:
    """The identity hashes a read has loaded so far: 8 bytes a record, kept sorted.

    ``add`` says which of a chunk's identities were seen before and adds the chunk's: one
    sort of the chunk, one ``searchsorted`` of its sorted hashes (cache-friendly) and one
    ``np.insert`` (a copy), so a read of a million records stays cheap.
    """

    def __init__(self) -> None:
        """Start with nothing seen."""
        self._sorted = np.empty(0, dtype=np.uint64)

    def add(self, identities: np.ndarray) -> np.ndarray:
        """Mark ``identities`` seen; return, per identity, whether it had been already."""
        order = np.argsort(identities, kind="stable")
        ordered = identities[order]
        where = np.searchsorted(self._sorted, ordered)
        found = np.zeros(len(ordered), dtype=bool)
        inside = where < len(self._sorted)
        found[inside] = self._sorted[where[inside]] == ordered[inside]
        self._sorted = np.insert(self._sorted, where, ordered)
        before = np.empty(len(identities), dtype=bool)
        before[order] = found
        return before
