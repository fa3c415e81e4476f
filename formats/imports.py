"""Import a file into the warehouse through the sync engine.

The file is a ``RecordSource`` (``formats.read.FileSource``) and the run is an
``EntitySync`` in "import" mode: every record is validated by the entity's pandera schema,
upserted by the same loader (a row whose content did not change is counted unchanged, so
importing a file twice changes nothing the second time) or quarantined with its reasons in
the ``quarantine`` table, and the run is recorded in ``sync_runs`` (mode ``import``). An
import never moves a watermark and never marks rows the file does not hold as deleted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from formats.entities import FileEntity
from formats.read import FileFormatError, FileSource
from pipeline.sync import EntityRunResult, EntitySync, SyncOptions


@dataclass
class ImportSummary:
    """What an import did: its counts and why the refused records were refused."""

    entity: str
    file: str
    format: str
    run_id: str
    read: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    status: str
    #: Up to ``EntitySync.QUARANTINE_SAMPLE`` refused records: key and reasons.
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        """Records written (inserted or updated)."""
        return self.inserted + self.updated

    def to_json(self) -> dict[str, Any]:
        """The summary as ``invsync import --json`` prints it."""
        return {
            "entity": self.entity,
            "file": self.file,
            "format": self.format,
            "run_id": self.run_id,
            "status": self.status,
            "read": self.read,
            "loaded": self.loaded,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "refused": self.refused,
        }


def import_file(
    engine: sa.Engine,
    entity: FileEntity,
    path: str | Path,
    fmt: str,
    *,
    chunk_size: int = 5_000,
    run_id: str | None = None,
) -> ImportSummary:
    """Load every record of the file, or quarantine it with its reasons.

    Raises:
        formats.read.FileFormatError: the file cannot be read; the message says what was
            committed before the damage (whole chunks; the run is recorded as failed).
    """
    run_id = run_id or f"import-{uuid.uuid4().hex[:12]}"
    options = SyncOptions(
        mode="import",
        chunk_size=chunk_size,
        prefetch=0,
        # A file is a hand-off: every refused record is reported, none fails the run.
        quarantine_fail_ratio=1.0,
    )
    source = FileSource(path, entity, fmt)
    sync = EntitySync(entity.spec(), source, engine, run_id=run_id, options=options)
    try:
        with sync:
            for chunk in sync.chunks():
                sync.process(chunk)
            result: EntityRunResult = sync.finish()
    except FileFormatError as exc:
        done = sync.result
        if done.extracted:
            kept = (
                f"; the {done.extracted} record(s) before it were committed (loaded "
                f"{done.inserted + done.updated}, unchanged {done.unchanged}, quarantined "
                f"{done.quarantined}): importing the repaired file again is safe"
            )
        else:
            kept = "; nothing was loaded"
        raise FileFormatError(f"{exc}{kept}") from exc
    return ImportSummary(
        entity=entity.name,
        file=str(path),
        format=fmt,
        run_id=run_id,
        read=result.extracted,
        inserted=result.inserted,
        updated=result.updated,
        unchanged=result.unchanged,
        quarantined=result.quarantined,
        status=result.status.value,
        refused=[
            {"key": q["source_key"], "reasons": q["reasons"]} for q in result.quarantine_sample
        ],
    )
