"""Stream processing: the code the stream-processor Lambda and the local platform both run on stream records.

Each record is decoded and validated; bad input is quarantined with its reason and never fails its
neighbours; legacy raw readings are scored with the original thresholds and keep their own event time;
accepted batches go to the archive and then to the sink, which ignores batches it has already stored.

Failure semantics: records are processed as one group (so sinks can pack writes), and the report names the
first record that was not fully handled (``failed_from``). Everything before it is archived and stored; it and
everything after it must be delivered again. Re-delivery is harmless: the archive and every sink are
idempotent by batch key, so the retry reaches the same final state as a clean run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import msgspec

from plantwatch.contract.batch import SCHEMA_VERSION, ScoredBatch
from plantwatch.contract.columns import BatchColumns
from plantwatch.contract.decode_columns import ColumnDecoder
from plantwatch.contract.legacy import LegacyDefaults
from plantwatch.contract.rejection import QuarantineEntry, Rejection
from plantwatch.contract.topics import is_alert_topic, is_summary_topic
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.ports import Archive, Clock, GatewayRegistry, Sink, SinkRejection, StreamRecord, WriteOutcome
from plantwatch.services.gateway_binding import origin_problem

log = logging.getLogger(__name__)


class ProcessReport(msgspec.Struct, kw_only=True):
    """Counts for one call of :meth:`StreamProcessor.process`, and where to resume if it did not finish."""

    records: int = 0
    readings_in: int = 0
    written: int = 0
    duplicate_batches: int = 0
    quarantined: int = 0
    #: readings the sink refused for good (also counted in ``quarantined``)
    sink_rejected: int = 0
    #: records handed back for re-delivery (``failed_from`` and every record after it)
    retried: int = 0
    #: alert events stored from gateways' alert topics (their bad payloads count in ``quarantined``)
    alerts: int = 0
    #: score summaries stored from gateways' summaries topics (their bad payloads count in ``quarantined``)
    summaries: int = 0
    #: id of the first record not fully archived and stored, or None when every record was handled
    failed_from: str | None = None

    def add(self, other: ProcessReport) -> None:
        """Add ``other``'s counts to this report (``failed_from`` is not summed)."""
        counts = ("records", "readings_in", "written", "duplicate_batches", "quarantined", "sink_rejected", "alerts")
        for name in (*counts, "summaries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retried += other.retried


class _Decoded(msgspec.Struct, kw_only=True):
    record: StreamRecord
    batch: BatchColumns | None
    quarantine: list[QuarantineEntry]


class TopicHandler(Protocol):
    """Takes the messages of one kind of gateway topic (alert events, score summaries), counting what it did."""

    stored: int
    quarantined: int

    def handle(self, topic: str, payload: bytes) -> None:
        """Store or quarantine one message; raises when it must be delivered again."""
        ...


class RegistryUnavailableError(RuntimeError):
    """The gateway registry could not answer; the record must be delivered again."""


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
        alerts: TopicHandler | None = None,
        summaries: TopicHandler | None = None,
        registry: GatewayRegistry | None = None,
    ) -> None:
        self.sink = sink
        self.archive = archive
        self.clock = clock
        self.legacy_defaults = legacy_defaults or LegacyDefaults()
        self.legacy_scorer = legacy_scorer or ThresholdScorer()
        self.decoder = ColumnDecoder()
        #: where records of gateways' alert and summaries topics go (without one, such records are decoded, and
        #: quarantined, as batches)
        self.alerts = alerts
        self.summaries = summaries
        #: gateway -> plant; with it, a batch for another plant than its gateway's is quarantined whole
        self.registry = registry

    def decode(self, record: StreamRecord) -> tuple[BatchColumns | None, list[QuarantineEntry]]:
        """The batch a record carries (valid readings only, as columns) and quarantine entries for all it rejected."""
        now = self.clock.now_ms()
        result = self.decoder.decode(record.data, now_ms=now, topic=record.topic, legacy_defaults=self.legacy_defaults)
        source = _source(record)
        quarantine = [
            QuarantineEntry.of(rejection, payload=record.data, source=source, received_at_ms=now)
            for rejection in result.rejections
        ]
        batch = result.batch
        if batch is not None:
            try:
                problem = origin_problem(record.topic, batch.gateway_id, batch.plant, self.registry)
            except Exception as exc:  # the registry is a remote service: a failure means "ask again later"
                raise RegistryUnavailableError(str(exc)) from exc
            if problem is not None:
                rejection = Rejection(reason=problem)
                quarantine.append(QuarantineEntry.of(rejection, payload=record.data, source=source, received_at_ms=now))
                batch = None
        if result.legacy is not None:
            reading = result.legacy
            batch = BatchColumns.of(
                ScoredBatch(
                    schema_version=SCHEMA_VERSION,
                    gateway_id=f"raw.{reading.sensor_id}",
                    seq=reading.ts_ms,
                    plant=reading.plant,
                    model=THRESHOLD_MODEL,
                    readings=(self.legacy_scorer.score(reading),),
                )
            )
        if batch is not None and not batch.count:
            batch = None
        return batch, quarantine

    def process(self, records: Sequence[StreamRecord]) -> ProcessReport:
        """Process records in order; never raises for bad input or a failing store (see ``failed_from``)."""
        report = ProcessReport(records=len(records))
        routed = {i: h for i, r in enumerate(records) if (h := self._handler_of(r.topic)) is not None}
        failed = len(records)  # index of the first record not fully handled
        decoded: list[_Decoded] = []
        for i, r in enumerate(records):
            batch: BatchColumns | None = None
            entries: list[QuarantineEntry] = []
            if i not in routed:
                try:
                    batch, entries = self.decode(r)
                except RegistryUnavailableError:
                    log.exception("gateway registry unavailable: record %s will be delivered again", r.record_id)
                    failed = min(failed, i)
            decoded.append(_Decoded(record=r, batch=batch, quarantine=entries))

        first_with_quarantine = next((i for i, d in enumerate(decoded) if d.quarantine), None)
        quarantine = [entry for d in decoded for entry in d.quarantine]
        if first_with_quarantine is not None and not self._quarantine(quarantine):
            failed = min(failed, first_with_quarantine)
        report.quarantined = len(quarantine)

        first_of_key: dict[str, int] = {}
        batches: list[BatchColumns] = []
        for i, d in enumerate(decoded):
            if d.batch is None:
                continue
            report.readings_in += d.batch.count
            if d.batch.key in first_of_key:
                report.duplicate_batches += 1
                continue
            first_of_key[d.batch.key] = i
            batches.append(d.batch)

        if batches:
            outcome = self._store(batches)
            report.written = outcome.written
            report.duplicate_batches += outcome.duplicate_batches
            for key in outcome.incomplete:
                failed = min(failed, first_of_key[key])
            if outcome.rejected:
                entries = [self._rejected_entry(r, decoded[first_of_key[r.batch_key]].record) for r in outcome.rejected]
                report.sink_rejected = len(entries)
                report.quarantined += len(entries)
                if not self._quarantine(entries):
                    failed = min(failed, *(first_of_key[r.batch_key] for r in outcome.rejected))

        if routed:
            failed_routed = self._ingest_routed([(i, records[i], h) for i, h in sorted(routed.items())], report)
            failed = failed if failed_routed is None else min(failed, failed_routed)

        if failed < len(decoded):
            report.failed_from = decoded[failed].record.record_id
            report.retried = len(decoded) - failed
            log.warning(
                "records from %s on (%d of %d) were not fully written and must be delivered again",
                report.failed_from,
                report.retried,
                len(decoded),
            )
        return report

    def _handler_of(self, topic: str | None) -> TopicHandler | None:
        if self.alerts is not None and is_alert_topic(topic):
            return self.alerts
        if self.summaries is not None and is_summary_topic(topic):
            return self.summaries
        return None

    def _ingest_routed(
        self, records: Sequence[tuple[int, StreamRecord, TopicHandler]], report: ProcessReport
    ) -> int | None:
        """Hand alert events and summaries over in order (bad ones are quarantined by their handler); the index of
        the first one not handled, if any."""
        before = {id(h): (h.stored, h.quarantined) for _, _, h in records}
        failed = None
        for i, record, handler in records:
            try:
                handler.handle(record.topic or "", record.data)
            except Exception:
                log.exception("%s was not stored; records from it on will be retried", _source(record))
                failed = i
                break
        for name, kind in (("alerts", self.alerts), ("summaries", self.summaries)):
            if kind is not None and id(kind) in before:
                stored, quarantined = before[id(kind)]
                setattr(report, name, getattr(report, name) + kind.stored - stored)
                report.quarantined += kind.quarantined - quarantined
        return failed

    def _quarantine(self, entries: Sequence[QuarantineEntry]) -> bool:
        """Archive and count quarantine entries; False when a store failed (the input must come again)."""
        for (source, reason), count in Counter((e.source, e.reason) for e in entries).items():
            log.warning("quarantined %d input(s) from %s: %s", count, source, reason)
        try:
            self.archive.put_quarantine(entries)
            self.sink.record_quarantine(entries)
        except Exception:
            log.exception("could not keep %d quarantine entries; their records will be retried", len(entries))
            return False
        return True

    def _store(self, batches: Sequence[BatchColumns]) -> WriteOutcome:
        """Archive, then write to the sink; a failure marks every batch the failing step did not finish."""
        keys = tuple(b.key for b in batches)
        try:
            self.archive.put_batches(batches)
        except Exception:
            log.exception("archiving %d batches failed; they will be retried", len(batches))
            return WriteOutcome(written=0, duplicate_batches=0, incomplete=keys)
        try:
            return self.sink.write(batches)
        except Exception:
            log.exception("the sink failed writing %d batches; they will be retried", len(batches))
            return WriteOutcome(written=0, duplicate_batches=0, incomplete=keys)

    def _rejected_entry(self, rejection: SinkRejection, record: StreamRecord) -> QuarantineEntry:
        payload = msgspec.json.encode(rejection)
        return QuarantineEntry.of(
            Rejection(reason=f"sink refused the reading: {rejection.reason}", sensor_id=rejection.sensor_id),
            payload=payload,
            source=_source(record),
            received_at_ms=self.clock.now_ms(),
        )


def _source(record: StreamRecord) -> str:
    return f"{record.topic or 'stream'}#{record.record_id}"
