"""Sync one entity from Finale into the warehouse, chunk by chunk, exactly once.

Plain code (no Prefect): ``EntitySync`` is driven by the Prefect subflow in
``flows/finale_sync.py`` through thin tasks, and can be driven directly by tests and
benchmarks. The contract it keeps:

- every extracted record is inserted, updated, unchanged or quarantined, and the run's
  counts say which (``extracted == inserted + updated + unchanged + quarantined``);
- each chunk's rows, its quarantine records, the run's counters and the watermark the chunk
  advances commit in ONE transaction, so a crash at any point loses nothing and duplicates
  nothing: the next run resumes from the committed watermark and upserts are idempotent.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.finale import FinaleClient
from connectors.finale.redact import redact_text
from pipeline.entities import EntitySpec
from pipeline.mapping import TransformContext
from pipeline.transform import (
    ChunkResult,
    QuarantineRecord,
    SeenIdentities,
    duplicate_label,
    transform_chunk,
)
from schemas import tables
from warehouse import load, state
from warehouse.canonical import RenderedRows, render_rows
from warehouse.stock import StockStager

log = logging.getLogger(__name__)

#: How a run reads. "backfill" reads [since, until] like "incremental" but never moves the
#: watermark, and is recorded (sync_runs, subflow names, events) as a backfill.
MODES = ("incremental", "full", "backfill")

#: The result fields written to ``sync_runs`` when a run finishes.
RUN_FIELDS = (
    "finished_at",
    "extracted",
    "inserted",
    "updated",
    "unchanged",
    "quarantined",
    "deleted",
    "watermark_before",
    "watermark_after",
    "source_count",
    "warehouse_count",
    "source_checksum",
    "warehouse_checksum",
)


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
    prefetch: int = 1
    #: How many chunks the flow prepares at once through its task runner (1 = the
    #: read-ahead thread of ``chunks``). Loads and commits stay in order either way.
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

    ``prepared`` is the chunk already transformed by ``EntitySync.prepare`` (in the
    read-ahead thread of ``chunks``, or in a task runner's worker while earlier chunks
    load), ``rendered`` its main table's rows already rendered for the loader; ``process``
    does either itself when it is None.
    """

    raw: pd.DataFrame
    watermark: datetime | None = None
    prepared: ChunkResult | None = field(default=None, compare=False, repr=False)
    rendered: RenderedRows | None = field(default=None, compare=False, repr=False)


@dataclass
class EntityRunResult:
    """What one entity run did; also the row written to ``sync_runs``."""

    run_id: str
    entity: str
    mode: str
    status: str = "running"
    extracted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deleted: int = 0
    chunks: int = 0
    watermark_before: datetime | None = None
    watermark_after: datetime | None = None
    source_count: int | None = None
    warehouse_count: int | None = None
    source_checksum: str | None = None
    warehouse_checksum: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    duration_ms: int = 0
    error: str | None = None
    quarantine_sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """True when every extracted record is accounted for."""
        loaded = self.inserted + self.updated + self.unchanged + self.quarantined
        return self.extracted == loaded

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (datetimes as ISO strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EntitySync:
    """One run of one entity: extract -> validate -> transform -> load, per chunk.

    Usage::

        sync = EntitySync(spec, client, engine, run_id="...", options=SyncOptions())
        with sync:
            for chunk in sync.chunks():
                sync.process(chunk)
            result = sync.finish()
    """

    QUARANTINE_SAMPLE = 20

    def __init__(
        self,
        spec: EntitySpec,
        client: FinaleClient,
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
        self.client = client
        self.engine = engine
        self.options = options
        self.flow_run_id = flow_run_id
        mode = options.mode + ("-dry-run" if options.dry_run else "")
        self.result = EntityRunResult(run_id=run_id, entity=spec.name, mode=mode)
        self._given_conn = conn
        self._conn: sa.Connection | None = None
        self._clock = time.monotonic()
        self._stager: StockStager | None = None
        self._held_keys: set[tuple[Any, ...]] = set()
        # Identities of the records this run has loaded: a record read again later in the
        # same read is a duplicate, quarantined rather than overwriting.
        self._seen = SeenIdentities()
        # Keys with an open quarantine entry (few): resolved when their record loads cleanly.
        self._open_quarantine: set[str] = set()
        # Summed entities: open keys read cleanly, by the key whose total they join; they
        # are resolved at the merge unless that total is held back.
        self._clean_summed: dict[str, tuple[Any, ...]] = {}
        self._source_hashes = load.ChecksumAccumulator()
        self._ctx = TransformContext(tz=options.tz)
        self._reader: Generator[Chunk, None, None] | None = None
        self._gc_pause = contextlib.ExitStack()
        self._track_deletions = False

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> EntitySync:
        # The run allocates millions of short-lived, acyclic objects (parsed JSON, pandas
        # and Arrow buffers) that reference counting frees; left on, the cyclic collector
        # rescans the live chunks again and again (measured: ~20% of a full sync's CPU).
        # It is paused for the whole run and resumes at its end. A chunk leaves only a few
        # dozen small cyclic objects behind (measured; see Transport._send for the one big
        # cycle, now broken); process() still clears the young generation every
        # GC_EVERY_CHUNKS chunks, so other threads' cycles cannot pile up in a long run.
        self._gc_pause.enter_context(_paused_gc())
        try:
            self._start()
        except BaseException:
            self._release()
            self._gc_pause.close()
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
            state.start_run(
                self._conn,
                run_id=self.result.run_id,
                flow_run_id=self.flow_run_id,
                entity=self.spec.name,
                mode=self.result.mode,
                started_at=self.result.started_at,
            )
            self._ctx = self._lookups(self._conn)
            self._open_quarantine = state.open_quarantine_keys(self._conn, self.spec.name)
        if self.full_read:
            with self._conn.begin():
                # A full read into a table with no live rows cannot find deletions: every
                # row it ends with came from the read itself. Skip collecting the keys then.
                self._track_deletions = load.has_live_rows(self._conn, self.spec.table)
                if self._track_deletions:
                    load.begin_seen_keys(self._conn, self.spec.table)
        if self.spec.summed:
            with self._conn.begin():
                self._stager = StockStager(self._conn, table=self.spec.table)
                self._stager.open()
        if self.options.dry_run:
            self._conn.begin()
        if self.options.mode == "full":
            # Only when asked to reconcile: stock is read whole on every (15-minute) run,
            # and re-hashing a large table costs about 20 us per row.
            self._reset_drift()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._reader is not None:
            # Left mid-read (an error while loading): stop the read-ahead thread now rather
            # than whenever the abandoned iterator is collected.
            self._reader.close()
        try:
            assert self._conn is not None
            if exc is not None:
                self._fail(exc)
            self._release()
        finally:
            self._gc_pause.close()

    def _reset_drift(self) -> None:
        # Rows edited in the warehouse behind the sync's back still carry the hash of what
        # was loaded, so the load would skip them and the checksums would agree. Re-hash
        # them first: the full read then rewrites them from Finale (counted as updated).
        tx = self._begin()
        try:
            tables = [self.spec.table] + ([self.spec.child.table] if self.spec.child else [])
            for table in tables:
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
        if self.options.mode == "backfill":
            return False
        since, mark = self.options.since, self.result.watermark_before
        return since is None or (mark is not None and since <= mark)

    # -- extract -----------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Read the entity from Finale in chunks, each with the watermark it may advance to.

        Chunks arrive transformed (``Chunk.prepared``). With ``options.prefetch`` > 0 a
        background thread reads and transforms up to that many chunks ahead while the
        caller loads the current one, so HTTP, JSON parsing and pandas overlap with the
        database's work; memory stays bounded by ``(prefetch + 2) * chunk_size`` records.
        """
        prepared = (self.prepare(chunk) for chunk in self._read())
        if self.options.prefetch <= 0:
            yield from prepared
            return
        reader = _read_ahead(prepared, self.options.prefetch, name=f"read-{self.spec.name}")
        self._reader = reader
        try:
            yield from reader
        finally:
            self._reader = None

    def raw_chunks(self) -> Iterator[Chunk]:
        """Read the entity from Finale in chunks, not yet transformed (``prepared`` is None).

        Each chunk carries the watermark it may advance to. The caller prepares them
        (``prepare``), possibly several at once, and must hand them to ``process`` in the
        order they were read. With ``options.prefetch`` > 0 a background thread reads up to
        that many chunks ahead, so the HTTP reads overlap the caller's loads.
        """
        if self.options.prefetch <= 0:
            yield from self._read()
            return
        reader = _read_ahead(self._read(), self.options.prefetch, name=f"read-{self.spec.name}")
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
        if not self.spec.summed:
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
        if self.full_read:
            pages = self.client.iter_collection(
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
        windows = self.client.iter_updated(
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
        if len(chunk.raw) and "products" in self.spec.lookups and not self._ctx.product_skus:
            # Not a content problem: quarantining every record would bury the cause.
            raise MissingCatalogue(
                f"{self.spec.name}: the warehouse's product catalogue is empty, so no record "
                "can be resolved to a SKU (product URLs are never guessed); sync products "
                f"first: invsync sync --entities products,{self.spec.name}"
            )
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
            counts = self._load(conn, outcome, now, rendered)
            if outcome.quarantined:
                state.record_quarantine(
                    conn,
                    self.result.run_id,
                    self.spec.name,
                    [_quarantine_row(q) for q in outcome.quarantined],
                    created_at=now,
                )
            self._resolve_quarantine(conn, outcome, now)
            if chunk.watermark is not None and self.may_advance_watermark:
                state.set_watermark(conn, self.spec.name, chunk.watermark, now=now)
            state.add_run_counts(conn, self.result.run_id, self.spec.name, **counts)
            tx.commit()
        except BaseException:
            tx.rollback()
            raise
        self._count(counts, outcome, chunk)
        if self.result.chunks % GC_EVERY_CHUNKS == 0:
            gc.collect(0)  # young objects only: ~15 ms with a chunk read ahead
        return outcome

    def _resolve_quarantine(self, conn: sa.Connection, outcome: ChunkResult, now: datetime) -> None:
        """Close the open quarantine entries of records this chunk loaded cleanly."""
        if not self._open_quarantine:
            return
        main = outcome.frames[self.spec.table.name]
        clean = [
            (key, position)
            for position, key in enumerate(outcome.source_keys(self.spec))
            if key in self._open_quarantine
        ]
        if not clean:
            return
        if self._stager is not None:
            keys = main[self.spec.key_columns].itertuples(index=False, name=None)
            pairs = list(keys)
            self._clean_summed.update((key, pairs[position]) for key, position in clean)
            return
        resolved = {key for key, _ in clean}
        state.resolve_quarantine(conn, self.spec.name, resolved, now)
        self._open_quarantine -= resolved

    def _begin(self) -> sa.RootTransaction | sa.NestedTransaction:
        # A dry run does all its work inside one outer transaction that finish() rolls
        # back; each chunk is a savepoint in it, so staging tables survive between chunks.
        if self.options.dry_run:
            return self.conn.begin_nested()
        return self.conn.begin()

    def _load(
        self,
        conn: sa.Connection,
        outcome: ChunkResult,
        now: datetime,
        rendered: RenderedRows | None = None,
    ) -> dict[str, int]:
        main = outcome.frames[self.spec.table.name]
        counts = {"extracted": outcome.extracted, "quarantined": len(outcome.quarantined)}
        if self._stager is not None:
            # Summed over the whole read before anything is compared: the other counts come
            # from the merge in finish(), in entries like these.
            self._stager.add(main)
            self._held_keys.update(outcome.quarantined_keys)
            return counts
        if rendered is None or len(rendered) != len(main):
            rendered = render_rows(self.spec.table, main)
        loaded = load.load_rendered(conn, self.spec.table, rendered, synced_at=now)
        self._source_hashes.add(loaded.hashes)
        if self.spec.child is not None:
            child = outcome.frames[self.spec.child.table.name]
            child_loaded = load.load_chunk(conn, self.spec.child.table, child, synced_at=now)
            load.delete_surplus_lines(conn, main, synced_at=now)
            del child_loaded
        if self._track_deletions:
            load.add_seen_rendered(conn, self.spec.table, rendered)
            # A quarantined record is still in Finale: it must not be marked deleted.
            quarantined_keys = pd.DataFrame(
                outcome.quarantined_keys, columns=self.spec.key_columns, dtype=object
            )
            load.add_seen_keys(conn, self.spec.table, quarantined_keys)
        counts.update(inserted=loaded.inserted, updated=loaded.updated, unchanged=loaded.unchanged)
        return counts

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
            if self._stager is not None:
                self._merge_summed(conn, now)
            elif self.full_read:
                if self._track_deletions:
                    r.deleted = load.mark_missing(conn, self.spec.table, synced_at=now)
                if self.spec.child is not None:
                    # An order gone from Finale takes its lines with it.
                    load.mark_deleted_children(
                        conn, self.spec.child.table, self.spec.table, synced_at=now
                    )
            if self.full_read:
                r.source_count, r.source_checksum = self._source_hashes.result()
                r.warehouse_count, r.warehouse_checksum = load.table_checksum(conn, self.spec.table)
            r.status = self._judge()
            r.finished_at = _utcnow()
            r.duration_ms = int((time.monotonic() - self._clock) * 1000)
            if self.options.dry_run:
                # Drop everything the run would have written; keep the record of the run.
                tx.commit()
                conn.rollback()
                tx = conn.begin()
            state.finish_run(
                conn, r.run_id, r.entity, r.status, error=r.error, **self._run_fields()
            )
            tx.commit()
        except BaseException:
            tx.rollback()
            raise
        if r.status == "failed":
            raise QuarantineThresholdExceeded(r.error)
        return r

    def _merge_summed(self, conn: sa.Connection, now: datetime) -> None:
        # Counted in entries read. A key (product at a sub-location) with a quarantined
        # entry keeps its stored value, since its sum would be incomplete: its other
        # entries are held back and count as quarantined too.
        assert self._stager is not None
        merged = self._stager.merge(synced_at=now, exclude_pairs=self._held_keys)
        entries = self._stager.entry_counts
        r = self.result
        r.inserted, r.updated, r.unchanged = entries.inserted, entries.updated, entries.unchanged
        r.quarantined += entries.held_back
        r.deleted = merged.deleted
        loaded = {key for key, pair in self._clean_summed.items() if pair not in self._held_keys}
        if loaded:
            state.resolve_quarantine(conn, self.spec.name, loaded, now)
        self._source_hashes.add(merged.checksum)

    def _judge(self) -> str:
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
            return "failed"
        if r.source_checksum is not None and (
            r.source_count != r.warehouse_count or r.source_checksum != r.warehouse_checksum
        ):
            return "degraded"
        return "succeeded"

    def _run_fields(self) -> dict[str, Any]:
        r = self.result
        return {name: getattr(r, name) for name in RUN_FIELDS}

    def _fail(self, exc: BaseException) -> None:
        r = self.result
        if r.status == "failed":
            return
        r.status = "failed"
        r.error = redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        r.finished_at = _utcnow()
        r.duration_ms = int((time.monotonic() - self._clock) * 1000)
        try:
            conn = self.conn
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                state.finish_run(
                    conn, r.run_id, r.entity, "failed", error=r.error, **self._run_fields()
                )
        except Exception:
            # The run's connection may be what failed (and its lock with it): record the
            # root cause on a fresh one, so sync_runs and the caller say the same.
            try:
                with self.engine.begin() as fresh:
                    state.finish_run(
                        fresh, r.run_id, r.entity, "failed", error=r.error, **self._run_fields()
                    )
            except Exception:
                log.exception("could not record the failed run of %s", r.entity)

    def _lookups(self, conn: sa.Connection) -> TransformContext:
        """The URL catalogues the entity resolves against (``EntitySpec.lookups``)."""
        catalogues = {
            "facilities": (
                "facility_ids",
                tables.facilities.c.facility_url,
                tables.facilities.c.facility_id,
            ),
            "vendors": ("party_ids", tables.vendors.c.finale_url, tables.vendors.c.party_id),
            # Deleted rows too: a URL the warehouse once resolved still names that record
            # (stock may outlive its product in Finale's reports).
            "products": ("product_skus", tables.products.c.finale_url, tables.products.c.sku),
        }
        found: dict[str, dict[str, str]] = {}
        for name in self.spec.lookups:
            attribute, url, key = catalogues[name]
            query = sa.select(url, key).where(url.is_not(None))
            found[attribute] = dict(conn.execute(query).tuples().all())
        return TransformContext(tz=self.options.tz, **found)


def _quarantine_row(q: QuarantineRecord) -> dict[str, Any]:
    return {"source_key": q.source_key, "reasons": "; ".join(q.reasons), "payload": q.payload}


#: How often (in committed chunks) a run clears the young generation of the paused collector.
GC_EVERY_CHUNKS = 10


# --- read-ahead and garbage-collector pauses ----------------------------------------------------

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = True


@contextlib.contextmanager
def _paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a block allocates many objects (a run).

    Parsing pages of JSON and mapping them allocate millions of small, acyclic objects that
    reference counting frees; the collector would rescan them again and again (measured:
    JSON parsing ~3x slower, mapping ~1.7x). Pauses nest and may overlap across threads
    (concurrent entity runs); the collector runs again once the last one ends, if it was
    enabled before the first.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


#: How long closing a read-ahead waits for its thread (a request in flight finishes or times
#: out on its own; the daemon thread then ends without handing anything over).
READ_AHEAD_JOIN_SECONDS = 10.0


def _read_ahead(items: Iterator[Chunk], depth: int, *, name: str) -> Generator[Chunk, None, None]:
    """Produce ``items`` in a background thread, at most ``depth`` ahead of the consumer.

    Errors of the producer are raised in the consumer, in order. When the consumer stops
    early (an error while loading, or it closes the iterator), the producer is told to stop
    and closes ``items`` in its own thread.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer("item", item):
                    return
            offer("end", None)
        except BaseException as exc:  # handed to the consumer, raised there
            offer("error", exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
            del value  # do not hold a loaded chunk while waiting for the next
    finally:
        stop.set()
        thread.join(timeout=READ_AHEAD_JOIN_SECONDS)
