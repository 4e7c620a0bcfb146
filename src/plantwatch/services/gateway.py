"""The edge gateway pipeline: read sources, score every reading, batch, and spool durably for the uplink."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import msgspec

from plantwatch.contract.batch import DEFAULT_MAX_READINGS, BatchHeader, ModelRef, encode_batches
from plantwatch.contract.reading import ScoredReading
from plantwatch.contract.topics import batch_topic
from plantwatch.domain.thresholds import ThresholdScorer
from plantwatch.ports import SensorSource, Spool

log = logging.getLogger(__name__)


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Identity and batching of one gateway."""

    gateway_id: str
    plant: str
    batch_interval_ms: int = 1000
    max_readings: int = DEFAULT_MAX_READINGS


class GatewayCounters(msgspec.Struct, kw_only=True):
    """What a gateway has done since it started."""

    readings: int = 0
    anomalies: int = 0
    batches: int = 0


class Gateway:
    """Polls its sources, scores readings, and seals them into numbered batches in the spool."""

    def __init__(
        self,
        *,
        config: GatewayConfig,
        sources: Sequence[SensorSource],
        scorer: ThresholdScorer,
        model: ModelRef,
        spool: Spool,
        on_spooled: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.sources = list(sources)
        self.scorer = scorer
        self.spool = spool
        self.header = BatchHeader(gateway_id=config.gateway_id, plant=config.plant, model=model)
        self.topic = batch_topic(config.gateway_id)
        self.on_spooled = on_spooled
        self.counters = GatewayCounters()
        self._pending: list[ScoredReading] = []
        self._last_flush_ms: int | None = None

    def step(self, now_ms: int) -> None:
        """Poll every source, score what arrived, and seal a batch when the interval has passed."""
        for source in self.sources:
            for reading in source.poll(now_ms):
                scored = self.scorer.score(reading)
                self._pending.append(scored)
                self.counters.readings += 1
                self.counters.anomalies += scored.anomaly
        if self._last_flush_ms is None:
            self._last_flush_ms = now_ms
        if (
            now_ms - self._last_flush_ms >= self.config.batch_interval_ms
            or len(self._pending) >= self.config.max_readings
        ):
            self.flush()
            self._last_flush_ms = now_ms

    def flush(self) -> int:
        """Seal pending readings into batches in the spool; returns how many batches."""
        if not self._pending:
            return 0
        encoded = encode_batches(
            self.header, self._pending, first_seq=self.spool.next_seq(), max_readings=self.config.max_readings
        )
        self.spool.put(self.topic, [(e.seq, e.payload) for e in encoded])
        self._pending.clear()
        self.counters.batches += len(encoded)
        if self.on_spooled:
            self.on_spooled()
        return len(encoded)
