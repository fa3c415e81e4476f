"""Sync one entity from its source (Finale, an app database) into the warehouse, exactly once.

Plain code (no Prefect): ``EntitySync`` is driven by the Prefect entity task in
``flows/finale_sync.py`` through thin tasks, and can be driven directly by tests and
benchmarks. The contract it keeps:

- every extracted record is inserted, updated, unchanged or quarantined, and the run's
  counts say which (``extracted == inserted + updated + unchanged + quarantined``);
- each chunk's rows, its quarantine records, the run's counters and the watermark the chunk
  advances commit in ONE transaction, so a crash at any point loses nothing and duplicates
  nothing: the next run resumes from the committed watermark and upserts are idempotent;
- the outbound events about those rows (the spec's watch rules, ``events.watch``) are
  recorded in the outbox in that same transaction, and ``sync.completed`` with the run's
  closing one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.redact import redact_text
from events import watch
from events.outbox import record_event
from pipeline.ahead import worked_ahead
from pipeline.entities import CATALOGUES, EntitySpec
from pipeline.loading import Batch, RunLoader, Written
from pipeline.mapping import TransformContext
from pipeline.source import RecordSource
from pipeline.transform import (
    ChunkResult,
    QuarantineRecord,
    SeenIdentities,
    duplicate_label,
    transform_chunk,
)
from warehouse import load, runs, state
from warehouse.canonical import RenderedRows, render_rows
from warehouse.runs import RunRecord, RunStatus

log = logging.getLogger(__name__)

#: How a run reads. "backfill" reads [since, until] like "incremental" but never moves the
#: watermark, and is recorded (sync_runs, task-run names, events) as a backfill. "import"
#: reads a file (``formats.imports``): every record of it, never moving the watermark and
#: never marking rows the file does not hold as deleted.
MODES = ("incremental", "full", "backfill", "import")


class QuarantineThresholdExceeded(Exception):
    """Too large a share of a run's records failed validation; the run is marked failed."""


class MissingCatalogue(Exception):
    """The entity resolves URLs through a catalogue that was never synced (e.g. stock read
    before any product): the run fails with what to sync first."""


@dataclass(frozen=True)
class SyncOptions:
    """How one entity run reads and judges its data."""

    mode: str = "incremental"
    since: datetime | None = None
    until: datetime | None = None
    chunk_size: int = 20_000
    dry_run: bool = False
    window_days: int = 30
    overlap: timedelta = timedelta(minutes=5)
    quarantine_fail_ratio: float = 0.05
    quarantine_fail_min_records: int = 3
    tz: str = "UTC"
    advance_watermark: bool = True
    #: How many chunks ``chunks`` reads ahead of the one loading (0 = none, one thread).
    prefetch: int = 1
    #: How many chunks ``chunks`` prepares at once. Loads and commits stay in read order.
    parallel_chunks: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware (got {value.isoformat()})")
        if self.parallel_chunks < 1:
            raise ValueError(f"parallel_chunks must be at least 1, not {self.parallel_chunks}")


@dataclass(frozen=True)
class Chunk:
    """One raw chunk plus the watermark it advances to once committed (None = no advance).

    ``prepared`` is the chunk already transformed by ``EntitySync.prepare`` (ahead of its
    load, see ``chunks``), ``rendered`` its main table's rows already rendered for the
    loader; ``process`` does either itself when it is None.
    """

    raw: pd.DataFrame
    watermark: datetime | None = None
    prepared: ChunkResult | None = field(default=None, compare=False, repr=False)
    rendered: RenderedRows | None = field(default=None, compare=False, repr=False)


@dataclass
class EntityRunResult(RunRecord):
    """What one entity run did: its ``sync_runs`` record (``RunRecord``, whose fields are
    the ones ``finish`` writes) plus what only the process that ran it saw."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    chunks: int = 0
    #: Up to ``EntitySync.QUARANTINE_SAMPLE`` of the run's quarantined records (raw payloads:
    #: reporting masks them).
    quarantine_sample: list[dict[str, Any]] = field(default_factory=list)
    #: Outbound events the run recorded in the outbox, by type.
    events: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """True when every extracted record is accounted for."""
        loaded = self.inserted + self.updated + self.unchanged + self.quarantined
        return self.extracted == loaded


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EntitySync:
    """One run of one entity: extract -> validate -> transform -> load, per chunk.

    Usage::

        sync = EntitySync(spec, source, engine, run_id="...", options=SyncOptions())
        with sync:
            for chunk in sync.chunks():
                sync.process(chunk)
            result = sync.finish()
    """

    QUARANTINE_SAMPLE = 20

    def __init__(
        self,
        spec: EntitySpec,
        source: RecordSource,
        engine: sa.Engine,
        *,
        run_id: str,
        options: SyncOptions,
        flow_run_id: str | None = None,
        conn: sa.Connection | None = None,
    ) -> None:
        """Prepare a run; nothing is read or written before ``__enter__``.

        ``conn``: the connection to do the run's work on, e.g. the one holding the entity's
        lock (``warehouse.locks.entity_lock``), so that the run cannot outlive its lock;
        None = a connection of its own. A given connection is not closed by the run.
        """
        self.spec = spec
        self.source = source
        self.engine = engine
        self.options = options
        self.flow_run_id = flow_run_id
        mode = options.mode + ("-dry-run" if options.dry_run else "")
        self.result = EntityRunResult(
            run_id=run_id, entity=spec.name, mode=mode, flow_run_id=flow_run_id
        )
        self._given_conn = conn
        self._conn: sa.Connection | None = None
        self._clock = time.monotonic()
        self._loader: RunLoader | None = None
        # Identities of the records this run has loaded: a record read again later in the
        # same read is a duplicate, quarantined rather than overwriting.
        self._seen = SeenIdentities()
        # Keys with an open quarantine entry (few): resolved when their record loads cleanly.
        self._open_quarantine: set[str] = set()
        self._ctx = TransformContext(tz=options.tz)
        self._reader: Generator[Chunk, None, None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> EntitySync:
        try:
            self._start()
        except BaseException:
            self._release()
            raise
        return self

    def _release(self) -> None:
        """Let go of the run's connection (closed only if the run opened it)."""
        if self._conn is not None and self._given_conn is None:
            self._conn.close()
        self._conn = None

    def _start(self) -> None:
        self._conn = self._given_conn or self.engine.connect()
        with self._conn.begin():
            self.result.watermark_before = state.get_watermark(self._conn, self.spec.name)
            runs.start_run(
                self._conn,
                run_id=self.result.run_id,
                flow_run_id=self.flow_run_id,
                entity=self.spec.name,
                mode=self.result.mode,
                started_at=self.result.started_at,
            )
            self._ctx = self._lookups(self._conn)
            self._open_quarantine = state.open_quarantine_keys(self._conn, self.spec.name)
        self._loader = self.spec.loading.start(
            self._conn, self.spec.target, full_read=self.full_read
        )
        if self.options.dry_run:
            self._conn.begin()
        if self.options.mode == "full":
            # Only when asked to reconcile: stock is read whole on every (15-minute) run,
            # and re-hashing a large table costs about 20 us per row.
            self._reset_drift()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._reader is not None:
            # Left mid-read (an error while loading): stop reading ahead now rather than
            # whenever the abandoned iterator is collected.
            self._reader.close()
        assert self._conn is not None
        if exc is not None:
            self._fail(exc)
        self._release()

    def _reset_drift(self) -> None:
        # Rows edited in the warehouse behind the sync's back still carry the hash of what
        # was loaded, so the load would skip them and the checksums would agree. Re-hash
        # them first: the full read then rewrites them from Finale (counted as updated).
        tx = self._begin()
        try:
            for table in self.spec.tables:
                drifted = load.reset_drifted_hashes(self.conn, table)
                if drifted:
                    log.warning(
                        "%s: %d row(s) no longer match their content hash (changed outside "
                        "the sync); rewriting them from Finale",
                        table.name,
                        drifted,
                    )
            tx.commit()
        except BaseException:
            tx.rollback()
            raise

    @property
    def conn(self) -> sa.Connection:
        """The connection this run holds (temp staging tables live on it)."""
        if self._conn is None:
            raise RuntimeError("EntitySync must be used as a context manager")
        return self._conn

    @property
    def full_read(self) -> bool:
        """Whether this run reads the whole collection (and so can detect deletions)."""
        if self.options.mode == "import":  # a file holds what it holds, not the collection
            return False
        if not self.spec.incremental or self.options.mode == "full":
            return True
        return self.options.since is None and self.result.watermark_before is None

    @property
    def may_advance_watermark(self) -> bool:
        """Whether committed chunks move the watermark.

        Only when the read starts at or before the stored watermark: a read that starts
        later (``--since`` in the future of the watermark, a backfill) would otherwise leave
        a gap of records nobody read.
        """
        if not (self.spec.incremental and self.options.advance_watermark):
            return False
        if self.options.mode in ("backfill", "import"):
            return False
        since, mark = self.options.since, self.result.watermark_before
        return since is None or (mark is not None and since <= mark)

    # -- extract -----------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Read the entity from Finale in chunks, each with the watermark it may advance to.

        Chunks arrive prepared (``Chunk.prepared``), in read order. With ``options.prefetch``
        > 0 or ``options.parallel_chunks`` > 1 they are read and prepared in a thread pool
        while the caller loads the current one (``pipeline.ahead``), so HTTP, JSON parsing
        and pandas overlap with the database's work; memory stays bounded by about
        ``(prefetch + parallel_chunks + 1) * chunk_size`` records.
        """
        parallel = self.options.parallel_chunks
        if self.options.prefetch <= 0 and parallel == 1:
            yield from (self.prepare(chunk) for chunk in self._read())
            return
        reader = worked_ahead(
            self._read(),
            self.prepare,
            ahead=max(1, self.options.prefetch) + parallel - 1,
            workers=parallel,
            name=f"read-{self.spec.name}",
        )
        self._reader = reader
        try:
            yield from reader
        finally:
            self._reader = None

    def prepare(self, chunk: Chunk) -> Chunk:
        """Transform, validate and render one chunk for ``process``; no database access.

        Safe to call from several threads at once, for different chunks: it only reads
        ``self.spec`` and the lookups taken at ``__enter__`` (``self._ctx``, frozen), and the
        chunk it is given; it writes nothing shared. Commit order is the caller's business.
        """
        if chunk.prepared is not None:
            return chunk
        outcome = transform_chunk(self.spec, chunk.raw, self._ctx)
        rendered: RenderedRows | None = None
        if self.spec.loading.renders_rows:
            try:
                rendered = render_rows(self.spec.table, outcome.frames[self.spec.table.name])
            except Exception:
                # process() renders again and raises there, inside the chunk's
                # transaction, exactly as without the read-ahead.
                rendered = None
        return Chunk(chunk.raw, chunk.watermark, outcome, rendered)

    def _read(self) -> Iterator[Chunk]:
        read_started = _utcnow()
        server_filter = dict(self.spec.server_filter) or None
        if self.full_read or self.options.mode == "import":
            pages = self.source.iter_collection(
                self.spec.collection,
                page_size=self.options.chunk_size,
                filter=server_filter,
                defer=self.spec.deferred_fields,
            )
            previous: pd.DataFrame | None = None
            # Hold one page back so the last page can carry the watermark: a crash before
            # the end leaves the watermark where it was and the next run reads all again.
            for page in pages:
                if previous is not None:
                    yield Chunk(previous)
                previous = page
            final_mark = read_started if self.spec.incremental else None
            yield Chunk(previous if previous is not None else pd.DataFrame(), final_mark)
            return
        since = self.options.since or self.result.watermark_before
        assert since is not None
        windows = self.source.iter_updated(
            self.spec.collection,
            since=since,
            until=self.options.until,
            window_days=self.options.window_days,
            overlap=self.options.overlap,
            extra_filter=server_filter,
            chunk_size=self.options.chunk_size,
            defer=self.spec.deferred_fields,
        )
        for window_chunk in windows:
            mark = window_chunk.window_end if window_chunk.last_in_window else None
            if mark is not None:
                mark = min(mark, read_started)
            yield Chunk(window_chunk.frame, mark)

    # -- validate, transform, load -----------------------------------------------------------

    def process(self, chunk: Chunk) -> ChunkResult:
        """Transform one chunk (unless ``chunks`` did) and commit it with its watermark in
        one transaction."""
        if len(chunk.raw):
            self._require_catalogues()
        outcome = chunk.prepared
        if outcome is None:
            outcome = transform_chunk(self.spec, chunk.raw, self._ctx)
        rendered = chunk.rendered
        repeated = self._seen.add(outcome.identities)
        if repeated.any():
            outcome = outcome.quarantine_rows(
                self.spec,
                repeated,
                f"{duplicate_label(self.spec)} appears more than once in this read (got a "
                "record read earlier in this run, which was kept); this one is not loaded",
            )
            rendered = None
        now = _utcnow()
        conn = self.conn
        tx = self._begin()
        try:
            batch = Batch(
                outcome.frames, outcome.quarantined_keys, rendered, self._clean_keys(outcome)
            )
            written = self._loaded.load(conn, batch, now)
            counts = {
                "extracted": outcome.extracted,
                "quarantined": len(outcome.quarantined),
                "inserted": written.inserted,
                "updated": written.updated,
                "unchanged": written.unchanged,
            }
            if outcome.quarantined:
                state.record_quarantine(
                    conn,
                    self.result.run_id,
                    self.spec.name,
                    [_quarantine_row(q) for q in outcome.quarantined],
                    created_at=now,
                )
            self._resolve(conn, written, now)
            if written.inserted or written.updated:
                self._announce(conn, now, loaded=outcome.frames[self.spec.table.name])
            if chunk.watermark is not None and self.may_advance_watermark:
                state.set_watermark(conn, self.spec.name, chunk.watermark, now=now)
            runs.add_run_counts(conn, self.result.run_id, self.spec.name, **counts)
            tx.commit()
        except BaseException:
            tx.rollback()
            raise
        self._count(counts, outcome, chunk)
        return outcome

    def _clean_keys(self, outcome: ChunkResult) -> dict[str, int]:
        """Open quarantine keys this chunk read cleanly -> their row in its main frame."""
        if not self._open_quarantine:
            return {}
        return {
            key: position
            for position, key in enumerate(outcome.source_keys(self.spec))
            if key in self._open_quarantine
        }

    def _resolve(self, conn: sa.Connection, written: Written, now: datetime) -> None:
        """Close the open quarantine entries of records that loaded cleanly."""
        if written.resolved:
            state.resolve_quarantine(conn, self.spec.name, written.resolved, now)
            self._open_quarantine -= written.resolved

    def _require_catalogues(self) -> None:
        for name in sorted(self.spec.required_lookups):
            catalogue = CATALOGUES[name]
            if not getattr(self._ctx, catalogue.context_field):
                # Not a content problem: quarantining every record would bury the cause.
                raise MissingCatalogue(
                    f"{self.spec.name}: the warehouse's {catalogue.entity} catalogue is empty, "
                    "so no record can be resolved (URLs are never guessed); sync "
                    f"{catalogue.entity} first: invsync sync --entities "
                    f"{catalogue.entity},{self.spec.name}"
                )

    def _begin(self) -> sa.RootTransaction | sa.NestedTransaction:
        # A dry run does all its work inside one outer transaction that finish() rolls
        # back; each chunk is a savepoint in it, so staging tables survive between chunks.
        if self.options.dry_run:
            return self.conn.begin_nested()
        return self.conn.begin()

    @property
    def _loaded(self) -> RunLoader:
        if self._loader is None:
            raise RuntimeError("EntitySync must be used as a context manager")
        return self._loader

    def _count(self, counts: dict[str, int], outcome: ChunkResult, chunk: Chunk) -> None:
        r = self.result
        r.chunks += 1
        for key, value in counts.items():
            setattr(r, key, getattr(r, key) + value)
        if chunk.watermark is not None and self.may_advance_watermark and not self.options.dry_run:
            r.watermark_after = max(filter(None, [r.watermark_after, chunk.watermark]))
        room = self.QUARANTINE_SAMPLE - len(r.quarantine_sample)
        r.quarantine_sample.extend(_quarantine_row(q) for q in outcome.quarantined[:room])

    # -- finish ------------------------------------------------------------------------------

    def finish(self) -> EntityRunResult:
        """Detect deletions and reconcile (full reads), judge quarantine, record the run."""
        r = self.result
        now = _utcnow()
        conn = self.conn
        tx = self._begin()
        try:
            # Counted in records read: a summed key held back at the merge (a part of it
            # was quarantined) keeps its stored value, and its parts count as quarantined.
            written = self._loaded.finish(conn, now)
            r.inserted += written.inserted
            r.updated += written.updated
            r.unchanged += written.unchanged
            r.quarantined += written.held_back
            r.deleted += written.deleted
            self._resolve(conn, written, now)
            if self.full_read:
                r.source_count, r.source_checksum = self._loaded.source_hashes.result()
                r.warehouse_count, r.warehouse_checksum = load.table_checksum(conn, self.spec.table)
            # Each chunk announced what it wrote; the end compares every record only when
            # it wrote rows itself (merged sums, deletions) or a full read may have.
            wrote = written.inserted or written.updated or written.deleted
            self._announce(conn, now, everything=bool(self.full_read or wrote))
            r.status = self._judge()
            r.finished_at = _utcnow()
            r.duration_ms = int((time.monotonic() - self._clock) * 1000)
            self._announce_run(conn)
            if self.options.dry_run:
                # Drop everything the run would have written; keep the record of the run.
                tx.commit()
                conn.rollback()
                tx = conn.begin()
            runs.finish_record(conn, r)
            tx.commit()
        except BaseException:
            tx.rollback()
            raise
        if r.status == RunStatus.FAILED:
            raise QuarantineThresholdExceeded(r.error)
        return r

    def _announce(
        self,
        conn: sa.Connection,
        now: datetime,
        loaded: pd.DataFrame | None = None,
        *,
        everything: bool = False,
    ) -> None:
        """Record the events of the spec's watch rules, in the transaction that wrote the rows.

        ``loaded``: the rows one chunk wrote (only their records are compared).
        ``everything``: compare every record, which also forgets deleted ones. With
        neither, only a rule that has no baseline yet takes it.
        """
        if self.options.dry_run:
            return
        for rule in self.spec.events:
            if everything:
                keys = None
            elif loaded is None:
                keys = []
            else:
                keys = loaded[rule.key_column].dropna().unique().tolist()
            announced = watch.announce(
                conn, rule, entity=self.spec.name, now=now, run_id=self.result.run_id, keys=keys
            )
            for event_type, count in announced.events.items():
                self.result.events[event_type] = self.result.events.get(event_type, 0) + count

    def _announce_run(self, conn: sa.Connection) -> None:
        """``sync.completed``, with the run's closing transaction, when the run changed rows."""
        r = self.result
        if self.options.dry_run or not (r.inserted or r.updated or r.deleted):
            return
        record_event(
            conn,
            "sync.completed",
            entity=r.entity,
            run_id=r.run_id,
            occurred_at=r.finished_at,
            payload={
                "entity": r.entity,
                "mode": r.mode,
                "status": r.status.value,
                "extracted": r.extracted,
                "inserted": r.inserted,
                "updated": r.updated,
                "unchanged": r.unchanged,
                "quarantined": r.quarantined,
                "deleted": r.deleted,
                "watermark_before": r.watermark_before,
                "watermark_after": r.watermark_after,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
            },
        )
        r.events["sync.completed"] = r.events.get("sync.completed", 0) + 1

    def _judge(self) -> RunStatus:
        r = self.result
        # Both a share and a count: one dirty supplier of eight is 12.5% but no outage.
        too_many = r.quarantined >= self.options.quarantine_fail_min_records
        if too_many and r.quarantined / r.extracted > self.options.quarantine_fail_ratio:
            r.error = (
                f"{r.quarantined} of {r.extracted} {r.entity} records "
                f"({r.quarantined / r.extracted:.1%}) failed validation, above the "
                f"QUARANTINE_FAIL_RATIO of {self.options.quarantine_fail_ratio:g} "
                f"({self.options.quarantine_fail_ratio:.2%}); "
                "see the quarantine table for the reasons"
            )
            return RunStatus.FAILED
        if r.source_checksum is not None and (
            r.source_count != r.warehouse_count or r.source_checksum != r.warehouse_checksum
        ):
            return RunStatus.DEGRADED
        return RunStatus.SUCCEEDED

    def _fail(self, exc: BaseException) -> None:
        r = self.result
        if r.status == RunStatus.FAILED:
            return
        r.status = RunStatus.FAILED
        r.error = redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        r.finished_at = _utcnow()
        r.duration_ms = int((time.monotonic() - self._clock) * 1000)
        try:
            conn = self.conn
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                runs.finish_record(conn, r)
        except Exception:
            # The run's connection may be what failed (and its lock with it): record the
            # root cause on a fresh one, so sync_runs and the caller say the same.
            try:
                with self.engine.begin() as fresh:
                    runs.finish_record(fresh, r)
            except Exception:
                log.exception("could not record the failed run of %s", r.entity)

    def _lookups(self, conn: sa.Connection) -> TransformContext:
        """The URL catalogues the entity resolves against (``EntitySpec.lookups``)."""
        found: dict[str, dict[str, str]] = {}
        for name in self.spec.lookups:
            catalogue = CATALOGUES[name]
            query = sa.select(catalogue.url, catalogue.key).where(catalogue.url.is_not(None))
            found[catalogue.context_field] = dict(conn.execute(query).tuples().all())
        return TransformContext(tz=self.options.tz, **found)


def _quarantine_row(q: QuarantineRecord) -> dict[str, Any]:
    return {"source_key": q.source_key, "reasons": "; ".join(q.reasons), "payload": q.payload}
