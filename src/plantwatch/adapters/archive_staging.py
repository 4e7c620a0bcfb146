"""Rolling archive objects: stage accepted batches durably, seal them into few large Parquet objects.

The local platform processes a stream record or two per step; archiving each step would make one tiny
Parquet object per line every second. Instead each step appends its fresh batches to a staging log (fsynced
before the step's checkpoint is committed, so nothing acknowledged can be lost), and the log is sealed into
the archive (one object per date/plant/line and one manifest entry) when it holds ``max_readings`` or its
oldest batch is ``max_age_ms`` old, and on shutdown. Sealing skips batches the manifest already names, so a
crash between sealing and clearing the log archives nothing twice. Quarantine entries are archived at once.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec

from plantwatch.adapters.archive import ComplianceArchive
from plantwatch.contract.batch import ScoredBatch
from plantwatch.contract.columns import Batch, count_of, scored_batch_of
from plantwatch.contract.rejection import QuarantineEntry
from plantwatch.ports import Clock

log = logging.getLogger(__name__)
_FRAME = struct.Struct(">I")


class RollingArchive:
    """An Archive that stages batches in a local log and seals them into ``archive`` in large objects."""

    def __init__(
        self,
        archive: ComplianceArchive,
        staging: Path,
        *,
        clock: Clock,
        max_readings: int = 200_000,
        max_age_ms: int = 10 * 60 * 1000,
    ) -> None:
        self.archive = archive
        self.staging = staging
        self.clock = clock
        self.max_readings = max_readings
        self.max_age_ms = max_age_ms
        self._lock = threading.Lock()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(ScoredBatch)
        self._staged: dict[str, Batch] = {}
        self._staged_readings = 0
        self._oldest_ms: int | None = None
        staging.parent.mkdir(parents=True, exist_ok=True)
        self._load()
        self._log = staging.open("ab")

    def _load(self) -> None:
        """Read complete frames of an existing log; cut a frame torn by a crash (its step was never committed)."""
        if not self.staging.exists():
            return
        data = self.staging.read_bytes()
        pos = 0
        while pos + _FRAME.size <= len(data):
            (size,) = _FRAME.unpack_from(data, pos)
            if pos + _FRAME.size + size > len(data):
                break
            batch = self._decoder.decode(data[pos + _FRAME.size : pos + _FRAME.size + size])
            self._stage(batch)
            pos += _FRAME.size + size
        if pos < len(data):
            log.warning("cutting a torn frame of %d bytes from %s", len(data) - pos, self.staging)
            with self.staging.open("r+b") as f:
                f.truncate(pos)

    def _stage(self, batch: Batch) -> None:
        self._staged[batch.key] = batch
        self._staged_readings += count_of(batch)
        if self._oldest_ms is None:
            self._oldest_ms = self.clock.now_ms()

    def put_batches(self, batches: Sequence[Batch]) -> None:
        """Stage batches neither staged nor archived, durably; seal when the log is big or old enough."""
        with self._lock:
            candidates = {b.key: b for b in batches if b.key not in self._staged}
            fresh_keys = self.archive.unarchived(list(candidates))
            fresh = [b for k, b in candidates.items() if k in fresh_keys]
            if fresh:
                for batch in fresh:
                    frame = self._encoder.encode(scored_batch_of(batch))
                    self._log.write(_FRAME.pack(len(frame)) + frame)
                    self._stage(batch)
                self._log.flush()
                os.fsync(self._log.fileno())
            self._roll_if_due()

    def put_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Archive quarantine entries at once (they are rare and each one matters)."""
        self.archive.put_quarantine(entries)

    def _roll_if_due(self) -> None:
        if not self._staged or self._oldest_ms is None:
            return
        if self._staged_readings >= self.max_readings or self.clock.now_ms() - self._oldest_ms >= self.max_age_ms:
            self._seal()

    def roll_if_due(self) -> None:
        """Seal the staged batches if they are big or old enough (call it when idle)."""
        with self._lock:
            self._roll_if_due()

    def _seal(self) -> None:
        self.archive.put_batches(list(self._staged.values()))
        self._log.truncate(0)
        self._log.flush()
        os.fsync(self._log.fileno())
        log.info("sealed %d staged batches (%d readings) into the archive", len(self._staged), self._staged_readings)
        self._staged.clear()
        self._staged_readings = 0
        self._oldest_ms = None

    def close(self) -> None:
        """Seal what is staged and close the log."""
        with self._lock:
            if self._staged:
                self._seal()
            self._log.close()
