"""Stream processing: the code the stream-processor Lambda and the local platform both run on stream records.

Each record is decoded and validated; bad input is quarantined with its reason and never fails its
neighbours; legacy raw readings are scored with the original thresholds and keep their own event time;
accepted batches go to the archive and then to the sink, which ignores batches it has already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec

from plantwatch.contract.batch import SCHEMA_VERSION, ScoredBatch
from plantwatch.contract.decode import decode_payload
from plantwatch.contract.legacy import LegacyDefaults
from plantwatch.contract.rejection import QuarantineEntry
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.ports import Archive, Clock, Sink, StreamRecord

log = logging.getLogger(__name__)


class ProcessReport(msgspec.Struct, kw_only=True):
    """Counts for one call of :meth:`StreamProcessor.process`."""

    records: int = 0
    readings_in: int = 0
    written: int = 0
    duplicate_batches: int = 0
    quarantined: int = 0


class StreamProcessor:
    """Turns stream records into stored readings, archived batches and quarantine entries."""

    def __init__(
        self,
        *,
        sink: Sink,
        archive: Archive,
        clock: Clock,
        legacy_defaults: LegacyDefaults | None = None,
        legacy_scorer: ThresholdScorer | None = None,
    ) -> None:
        self.sink = sink
        self.archive = archive
        self.clock = clock
        self.legacy_defaults = legacy_defaults or LegacyDefaults()
        self.legacy_scorer = legacy_scorer or ThresholdScorer()

    def decode(self, record: StreamRecord) -> tuple[ScoredBatch | None, list[QuarantineEntry]]:
        """The batch a record carries (valid readings only) and quarantine entries for all it rejected."""
        now = self.clock.now_ms()
        result = decode_payload(record.data, now_ms=now, topic=record.topic, legacy_defaults=self.legacy_defaults)
        source = f"{record.topic or 'stream'}#{record.record_id}"
        quarantine = [
            QuarantineEntry.of(rejection, payload=record.data, source=source, received_at_ms=now)
            for rejection in result.rejections
        ]
        batch = result.batch
        if result.legacy is not None:
            reading = result.legacy
            batch = ScoredBatch(
                schema_version=SCHEMA_VERSION,
                gateway_id=f"raw.{reading.sensor_id}",
                seq=reading.ts_ms,
                plant=reading.plant,
                model=THRESHOLD_MODEL,
                readings=(self.legacy_scorer.score(reading),),
            )
        if batch is not None and not batch.readings:
            batch = None
        return batch, quarantine

    def process(self, records: Sequence[StreamRecord]) -> ProcessReport:
        """Process records in order; raises only when a sink or the archive fails (the caller retries)."""
        report = ProcessReport(records=len(records))
        batches: list[ScoredBatch] = []
        quarantine: list[QuarantineEntry] = []
        for record in records:
            batch, rejected = self.decode(record)
            quarantine.extend(rejected)
            if batch is not None:
                batches.append(batch)
                report.readings_in += len(batch.readings)
        if quarantine:
            self.archive.put_quarantine(quarantine)
            self.sink.record_quarantine(quarantine)
            report.quarantined = len(quarantine)
            for entry in quarantine:
                log.warning("quarantined input from %s: %s", entry.source, entry.reason)
        if batches:
            self.archive.put_batches(batches)
            outcome = self.sink.write(batches)
            report.written = outcome.written
            report.duplicate_batches = outcome.duplicate_batches
        return report
