"""The contract every entity spec keeps, checked for each one (like the Singer SDK's
generated tap tests): add a spec to ``pipeline.entities.ENTITIES`` and it is tested here.

For each table a spec fills (its own and its child's):

- the mapping, the pandera schema and the table agree: what the schema checks and what the
  loader is handed exist in the mapped frame, the loader gets table columns, and no mapped
  column is dead weight;
- the key field maps to the primary key (or, where the key is an aggregate, the identity
  fields cover it);
- no deferred field is read, by a rule or by anything else of the transform;
- the table is part of the warehouse schema;
- a record read from the sandbox lands in the warehouse with the values the spec's mapping
  gives it, on SQLite and on PostgreSQL.

Everything entity-specific is read from the spec (its loading strategy, its child's
``finalise`` hook, its identity fields, row checks and deferred fields), never from names.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pandas as pd
import pandera.pandas as pa
import pytest
import sqlalchemy as sa

from pipeline.entities import APP_ENTITIES, CATALOGUES, ENTITIES, EntitySpec
from pipeline.mapping import Rule, TransformContext, apply_mapping
from pipeline.transform import transform_chunk
from sandbox.config import SandboxConfig
from sandbox.server import SandboxHandle
from sandbox.store import SandboxStore
from schemas import tables
from warehouse.canonical import business_columns

# --- the e2e suite's sandbox fixture and drivers, shared rather than copied ---------------

E2E = Path(__file__).resolve().parents[1] / "e2e"


def _e2e_module(name: str, file: str) -> ModuleType:
    """A module of ``tests/e2e`` (its helpers import each other by their plain names)."""
    if str(E2E) not in sys.path:
        sys.path.append(str(E2E))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, E2E / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


e2e = _e2e_module("pipeline_e2e_support", "pipeline_e2e_support.py")
make_sandbox = _e2e_module("pipeline_e2e_fixtures", "conftest.py").make_sandbox

#: A small account: every collection has clean and dirty records, and a sync takes ms.
PRODUCTS = 40


# --- the tables a spec fills ---------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One table an entity spec fills: its own, or its child's."""

    spec: EntitySpec
    table: sa.Table
    mapping: Mapping[str, Rule]
    schema: pa.DataFrameSchema
    is_child: bool

    @property
    def id(self) -> str:
        return f"{self.spec.name}:{self.table.name}" if self.is_child else self.spec.name

    @property
    def key_columns(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns]

    def loaded_columns(self) -> list[str]:
        """What a chunk hands the loader for this table (as ``transform_chunk`` does)."""
        if self.is_child:
            return business(self.table)
        return list(self.spec.loading.columns(self.spec.table))

    def finalise(self) -> Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], Any] | None:
        """The hook that fills columns computed from the child rows (parents only)."""
        if self.is_child or self.spec.child is None:
            return None
        return self.spec.child.finalise

    def mapped(self, raw: pd.DataFrame, ctx: TransformContext) -> pd.DataFrame:
        """The frame the transform builds for this table: mapped, then finalised."""
        if self.is_child:
            return child_rows(self.spec, raw, ctx).drop(columns=["parent"])
        frame = apply_mapping(raw, self.spec.mapping, ctx)[0]
        finalise = self.finalise()
        if finalise is not None:
            frame = finalise(frame, raw, child_rows(self.spec, raw, ctx))
        return frame


def child_rows(spec: EntitySpec, raw: pd.DataFrame, ctx: TransformContext) -> pd.DataFrame:
    """The spec's mapped child rows, with the ``parent`` row each came from."""
    assert spec.child is not None
    exploded = spec.child.explode(raw, ctx)
    rows = apply_mapping(exploded, spec.child.mapping, ctx)[0]
    rows["parent"] = exploded["parent"]
    return rows


def business(table: sa.Table) -> list[str]:
    """The table's columns a transform fills (all but the loader's bookkeeping)."""
    return [c.name for c in business_columns(table)]


def _parts() -> list[Part]:
    parts = []
    for spec in ENTITIES.values():
        parts.append(Part(spec, spec.table, spec.mapping, spec.schema, is_child=False))
        if spec.child is not None:
            child = spec.child
            parts.append(Part(spec, child.table, child.mapping, child.schema, is_child=True))
    return parts


PARTS = [pytest.param(part, id=part.id) for part in _parts()]
SPECS = [pytest.param(spec, id=name) for name, spec in ENTITIES.items()]
#: Every spec, the app's too (Supabase): what can be checked without a Finale sample.
ALL_SPECS = [pytest.param(spec, id=name) for name, spec in {**ENTITIES, **APP_ENTITIES}.items()]
PARENTS = [pytest.param(spec, id=name) for name, spec in ENTITIES.items() if spec.child]


@cache
def sample(collection: str) -> pd.DataFrame:
    """A raw frame of a whole collection of a small generated account (no server)."""
    store = SandboxStore(SandboxConfig(products=PRODUCTS))
    body = orjson.loads(store.read_collection(collection, filter_param=None, limit=None, offset=0))
    return raw_frame(body)


def raw_frame(columns: Mapping[str, list[Any]]) -> pd.DataFrame:
    """A column-major Finale body as the raw frame a transform takes (values as sent)."""
    return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in columns.items()})


def selected(spec: EntitySpec, raw: pd.DataFrame) -> pd.DataFrame:
    """The raw rows that belong to ``spec`` (as the transform selects them)."""
    if spec.select is not None and len(raw):
        raw = raw[spec.select(raw)]
    return raw.reset_index(drop=True)


def mapped_columns(part: Part) -> set[str]:
    """The columns of the frame the transform builds: mapping targets plus computed ones."""
    raw = selected(part.spec, sample(part.spec.collection))
    frame = part.mapped(raw, TransformContext())
    assert set(part.mapping) <= set(frame.columns)
    return set(frame.columns)


# --- mapping, schema and table agree -------------------------------------------------------


@pytest.mark.parametrize("part", PARTS)
def test_schema_checks_only_columns_of_the_mapped_frame(part: Part) -> None:
    # A schema column nothing produces would fail every row (or, if optional, check nothing).
    assert set(part.schema.columns) <= mapped_columns(part)


@pytest.mark.parametrize("part", PARTS)
def test_what_the_loader_gets_is_in_the_mapped_frame(part: Part) -> None:
    assert set(part.loaded_columns()) <= mapped_columns(part)


@pytest.mark.parametrize("part", PARTS)
def test_what_the_loader_gets_are_columns_of_the_table_with_its_key(part: Part) -> None:
    loaded = part.loaded_columns()
    assert len(loaded) == len(set(loaded))
    assert set(loaded) <= set(business(part.table))
    assert set(part.key_columns) <= set(loaded)


@pytest.mark.parametrize("part", PARTS)
def test_a_row_loader_gets_every_business_column_of_the_table(part: Part) -> None:
    loaded = part.loaded_columns()
    if loaded == business(part.table):
        return  # rows are loaded as mapped: nothing for the loader to make up
    # Only a strategy that hands over other columns than the table's (partial quantities
    # summed, then merged) may leave columns to the loader; it must still hand over the key
    # and at least one column to aggregate. Child rows are always loaded as mapped.
    assert not part.is_child
    assert set(loaded) - set(part.key_columns)


@pytest.mark.parametrize("part", PARTS)
def test_every_mapped_column_is_loaded_checked_or_read(part: Part) -> None:
    """A mapped column that is not loaded must be there for a reason: the schema checks
    it, or a row check or the child's ``finalise`` hook reads it (found by taking the
    column away and seeing them fail)."""
    raw = selected(part.spec, sample(part.spec.collection))
    ctx = TransformContext()
    frame = part.mapped(raw, ctx)
    unused = set(frame.columns) - set(part.loaded_columns()) - set(part.schema.columns)
    readers: list[Callable[[pd.DataFrame], Any]] = []
    if not part.is_child:
        readers.extend(part.spec.row_checks)
        finalise = part.finalise()
        if finalise is not None:
            lines = child_rows(part.spec, raw, ctx)
            readers.append(lambda f: finalise(f, raw, lines))
    mapped_only = set(apply_mapping(raw, part.mapping, ctx)[0].columns)
    for column in sorted(unused & mapped_only):
        assert any(_reads(reader, frame, column) for reader in readers), (
            f"{part.id}: mapped column {column!r} is neither loaded, nor checked by the "
            "schema, nor read by a row check or finalise hook"
        )


def _reads(reader: Callable[[pd.DataFrame], Any], frame: pd.DataFrame, column: str) -> bool:
    try:
        reader(frame.drop(columns=[column]))
    except KeyError:
        return True
    return False


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_the_key_field_maps_to_the_primary_key(spec: EntitySpec) -> None:
    targets = {target for target, rule in spec.mapping.items() if rule.source == spec.key_field}
    assert targets & set(spec.key_columns), (
        f"{spec.name}: no rule reads key_field {spec.key_field!r} into a primary-key column "
        f"({spec.key_columns})"
    )
    assert set(spec.key_columns) <= set(spec.mapping)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_identity_fields_cover_the_primary_key(spec: EntitySpec) -> None:
    """Where a record is not identified by its mapped key (partial rows of one key), the
    identity must still tell apart records of different keys, so it includes every field
    a key column is mapped from."""
    if spec.identity_fields is None:
        return  # the mapped primary key itself is the identity
    key_sources = {spec.mapping[c].source for c in spec.key_columns}
    assert spec.key_field in spec.identity_fields
    assert key_sources <= set(spec.identity_fields)


@pytest.mark.parametrize("spec", PARENTS)
def test_a_child_row_is_keyed_by_its_parent_key(spec: EntitySpec) -> None:
    assert spec.child is not None
    child_keys = [c.name for c in spec.child.table.primary_key.columns]
    assert set(spec.key_columns) < set(child_keys)
    assert set(child_keys) <= set(spec.child.mapping)
    # The parent's key reaches the child rows from the parent record's key field.
    for column in spec.key_columns:
        parent_source = spec.mapping[column].source
        assert spec.child.mapping[column].source == parent_source == spec.key_field
        exploded = spec.child.explode(selected(spec, sample(spec.collection)), TransformContext())
        assert len(exploded) and exploded[parent_source].notna().all()


# --- deferred fields -----------------------------------------------------------------------


class Poison:
    """A deferred value that fails as soon as anything looks at it (but ``is`` and repr)."""

    def _touched(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a deferred field was read")

    __eq__ = __ne__ = __lt__ = __gt__ = __bool__ = __len__ = __iter__ = _touched
    __contains__ = __getitem__ = __str__ = __float__ = __int__ = __hash__ = _touched

    def __repr__(self) -> str:
        return "Poison()"


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_no_rule_reads_a_deferred_field(spec: EntitySpec) -> None:
    read = {spec.key_field, spec.cursor_field, *spec.lists, *spec.server_filter}
    read |= {rule.source for rule in spec.mapping.values()}
    read |= set(spec.identity_fields or ())
    if spec.child is not None:
        # Child rules read the exploded rows, whose fields come from the parent's items.
        read |= {rule.source for rule in spec.child.mapping.values()}
    assert not read & set(spec.deferred_fields)


@pytest.mark.parametrize("spec", SPECS)
def test_the_transform_never_touches_a_deferred_field(spec: EntitySpec) -> None:
    """Selection, explosion, checks, keys: with every deferred value replaced by one that
    fails when looked at, the transform gives the same result."""
    raw = sample(spec.collection)
    poisoned = raw.copy()
    for name in spec.deferred_fields:
        assert name in raw.columns, f"{spec.name}: deferred field {name!r} is not in the data"
        poisoned[name] = pd.Series([Poison()] * len(raw), index=raw.index, dtype=object)
    ctx = TransformContext()
    expected = transform_chunk(spec, raw, ctx)
    got = transform_chunk(spec, poisoned, ctx)
    for name, frame in expected.frames.items():
        pd.testing.assert_frame_equal(got.frames[name], frame)
    assert [(q.source_key, q.reasons) for q in got.quarantined] == [
        (q.source_key, q.reasons) for q in expected.quarantined
    ]


# --- tables --------------------------------------------------------------------------------


@pytest.mark.parametrize("part", PARTS)
def test_the_table_is_part_of_the_warehouse_schema(part: Part) -> None:
    assert tables.metadata.tables.get(part.table.name) is part.table
    assert part.table in part.spec.tables


def test_each_table_is_filled_by_one_entity() -> None:
    owners = [t.name for spec in [*ENTITIES.values(), *APP_ENTITIES.values()] for t in spec.tables]
    assert len(owners) == len(set(owners))


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_the_entity_has_a_positive_expected_interval(spec: EntitySpec) -> None:
    assert spec.expected_interval.total_seconds() > 0


@pytest.mark.parametrize("spec", [pytest.param(s, id=n) for n, s in APP_ENTITIES.items()])
def test_a_typed_source_reads_every_field_the_mapping_needs(spec: EntitySpec) -> None:
    needed = {spec.key_field, spec.cursor_field, *(rule.source for rule in spec.mapping.values())}
    assert needed <= set(spec.source_columns), sorted(needed - set(spec.source_columns))
    assert spec.source_columns[spec.cursor_field or ""] == "timestamp"


# --- sandbox -> warehouse ------------------------------------------------------------------


def with_dependencies(name: str) -> list[str]:
    """``name`` and every entity it depends on, in sync order."""
    needed: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current not in needed:
            needed.add(current)
            todo.extend(ENTITIES[current].depends_on)
    return [entity for entity in ENTITIES if entity in needed]


def warehouse_context(conn: sa.Connection, spec: EntitySpec, tz: str) -> TransformContext:
    """The URL lookups a run of ``spec`` resolves against, read from the warehouse."""
    lookups = {}
    for name in spec.lookups:
        catalogue = CATALOGUES[name]
        pairs = conn.execute(sa.select(catalogue.url, catalogue.key)).all()
        lookups[catalogue.context_field] = {url: key for url, key in pairs if url is not None}
    return TransformContext(tz=tz, **lookups)


def normal(value: Any) -> Any:
    """A value as comparable across pandas, SQLite and PostgreSQL."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (Decimal, numbers.Real)) and not isinstance(value, bool):
        return round(float(value), 4)
    if isinstance(value, (datetime, pd.Timestamp)):
        stamp = pd.Timestamp(value)
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).tz_convert("UTC")
    return value


@pytest.mark.parametrize("part", PARTS)
def test_a_sandbox_record_lands_in_the_warehouse_as_the_spec_maps_it(
    part: Part, engine: sa.Engine, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    spec = part.spec
    handle = make_sandbox(products=PRODUCTS)
    run = e2e.run_sync(engine, handle, entities=with_dependencies(spec.name))
    assert run.results[spec.name].status == "succeeded"

    # The source, read apart from the pipeline; the records the run quarantined left out.
    raw = selected(spec, raw_frame(_columns(e2e.read_collection(handle, spec.collection))))
    with engine.connect() as conn:
        ctx = warehouse_context(conn, spec, handle.config.timezone)
        bad_keys = set(
            conn.execute(
                sa.select(tables.quarantine.c.source_key).where(
                    tables.quarantine.c.entity == spec.name,
                    tables.quarantine.c.resolved_at.is_(None),
                )
            ).scalars()
        )
        loaded = part.loaded_columns()
        names = part.key_columns + [c for c in loaded if c not in part.key_columns]
        stored = {
            tuple(row[: len(part.key_columns)]): dict(zip(names, row, strict=True))
            for row in conn.execute(
                sa.select(*(part.table.c[c] for c in names)).where(
                    part.table.c.deleted_at.is_(None)
                )
            ).all()
        }
    quarantined = spec.source_key(raw).isin(bad_keys).to_numpy()
    frame = part.mapped(raw[~quarantined].reset_index(drop=True), ctx)
    expected = frame[loaded]
    if loaded != business(part.table):
        # Partial rows: the warehouse holds their sums per key. A key with a quarantined
        # part is held back (its sum would be incomplete), so it is not compared.
        held = part.mapped(raw[quarantined].reset_index(drop=True), ctx)[part.key_columns]
        expected = expected.groupby(part.key_columns, as_index=False, dropna=False).sum()
        held_keys = set(held.itertuples(index=False, name=None))
        expected = expected[
            [k not in held_keys for k in expected[part.key_columns].itertuples(index=False)]
        ]
    assert len(expected), f"{part.id}: the sandbox account has no clean record to compare"
    for record in expected.to_dict("records"):
        key = tuple(record[c] for c in part.key_columns)
        assert key in stored, f"{part.id}: record {key} did not reach {part.table.name}"
        row = stored[key]
        want = {c: normal(record[c]) for c in loaded}
        got = {c: normal(row[c]) for c in loaded}
        assert got == want, f"{part.id}: record {key}"
    assert sa.inspect(engine).has_table(part.table.name)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [row.get(name) for row in rows] for name in names}
