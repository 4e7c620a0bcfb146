"""Benchmark the stream-processor handler: readings/s per core, and WriteRecords calls and Kinesis records
per 1M readings against a re-implementation of the original design's per-reading handler (same run).

The sinks' network calls go to the Timestream contract fake and an in-memory object store, so what is
measured is plantwatch's own work: decode, validate, build Timestream records, encode Parquet, hash.

    .venv/bin/python benchmarks/stream_handler.py [--readings 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from plantwatch.adapters import timestream
from plantwatch.adapters.archive import ComplianceArchive
from plantwatch.adapters.timestream import TimestreamSink
from plantwatch.cloud.stream_handler import StreamHandler, kinesis_event
from plantwatch.contract.batch import BatchHeader, encode_batches
from plantwatch.contract.decode_columns import ColumnDecoder
from plantwatch.contract.reading import Reading
from plantwatch.domain.thresholds import THRESHOLD_MODEL, ThresholdScorer
from plantwatch.ports import StreamRecord
from plantwatch.services.stream_processing import StreamProcessor
from plantwatch.testing.timestream_fake import FakeTimestreamWrite

T0 = 1_767_268_800_000
TYPES = (("temperature", "degC", 55.0), ("vibration", "mm/s", 24.0), ("pressure", "kPa", 140.0))
PER_BATCH = 2000  # a gateway's batch (DEFAULT_MAX_READINGS)
KINESIS_EVENT_RECORDS = 100  # Lambda batch size used for the measurement


class Clock:
    """Fixed time just after the readings."""

    def now_ms(self) -> int:
        """Now."""
        return T0 + 3_600_000


class MemoryStore:
    """An in-memory ObjectStore (S3 without the network)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_new(self, key: str, data: bytes) -> bool:
        """Create if absent."""
        if key in self.objects:
            return False
        self.objects[key] = data
        return True

    def get(self, key: str) -> bytes | None:
        """Read."""
        return self.objects.get(key)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """List in key order."""
        for key in sorted(self.objects):
            if key.startswith(prefix) and (start_after is None or key > start_after):
                yield key, len(self.objects[key])

    def describe(self) -> str:
        """Name."""
        return "memory"


class TimedFake(FakeTimestreamWrite):
    """The contract fake, timing itself: its CPU stands in for the network and is reported apart."""

    seconds = 0.0

    def write_records(self, **kwargs: Any) -> dict[str, Any]:
        """Time the fake's own work."""
        start = time.process_time()
        try:
            return super().write_records(**kwargs)
        finally:
            self.seconds += time.process_time() - start


class TickingClock:
    """A clock that advances 1 ms per reading it is asked about (the original stamps processing time)."""

    def __init__(self) -> None:
        self.now = T0 + 3_600_000

    def now_ms(self) -> int:
        """Now, then a millisecond later."""
        self.now += 1
        return self.now


def readings(n: int, lines: int = 4, sensors_per_line: int = 60) -> list[Reading]:
    """``n`` readings of a plant sampled once a second, one in 50 over the original thresholds."""
    out = []
    sensors = lines * sensors_per_line
    for i in range(n):
        s = i % sensors
        stype, unit, base = TYPES[s % 3]
        value = base + (i % 17) * 0.3 + (60.0 if i % 50 == 0 else 0.0)
        out.append(
            Reading(
                plant="plant-1",
                line=f"line-{s // sensors_per_line}",
                asset=f"asset-{s // 6}",
                sensor_id=f"sensor-{s:04d}",
                sensor_type=stype,
                unit=unit,
                ts_ms=T0 + (i // sensors) * 1000,
                value=value,
            )
        )
    return out


def gateway_records(data: list[Reading]) -> list[StreamRecord]:
    """The readings as gateways send them: scored, in batches of 2000, one Kinesis record per batch."""
    scorer = ThresholdScorer()
    scored = scorer.score_many(data)
    encoded = encode_batches(
        BatchHeader(gateway_id="gw-1", plant="plant-1", model=THRESHOLD_MODEL),
        scored,
        first_seq=1,
        max_readings=PER_BATCH,
    )
    return [
        StreamRecord(record_id=f"{i:020d}", data=e.payload, arrival_ms=T0, topic="plantwatch/gateways/gw-1/batches")
        for i, e in enumerate(encoded, 1)
    ]


def run_handler(records: list[StreamRecord]) -> tuple[float, TimedFake, int]:
    """CPU seconds to handle every record in Lambda-sized events; the fake and the number of archive objects."""
    clock = Clock()
    # retain=False: the fake validates every request but keeps no rows; 200,000 retained rows made the garbage
    # collector's pass over the fake's own storage the largest cost attributed to the handler
    fake = TimedFake(clock=clock, database="db", table="t", retain=False)
    sink = TimestreamSink(fake, database="db", table="t", clock=clock, workers=1)
    store = MemoryStore()
    handler = StreamHandler(StreamProcessor(sink=sink, archive=ComplianceArchive(store, clock=clock), clock=clock))
    events = [
        kinesis_event(records[i : i + KINESIS_EVENT_RECORDS]) for i in range(0, len(records), KINESIS_EVENT_RECORDS)
    ]
    start = time.process_time()
    for event in events:
        assert handler.handle(event)["batchItemFailures"] == []
    return time.process_time() - start, fake, len(store.objects)


class StepTimer:
    """CPU time spent inside wrapped functions (and generators), by step name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, timed under ``step``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[step] = self.seconds.get(step, 0.0) + time.process_time() - start

        return timed

    def wrap_iter(self, step: str, function: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        """A generator ``function`` whose every step is timed under ``step``."""

        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            items = function(*args, **kwargs)
            while True:
                start = time.process_time()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self.seconds[step] = self.seconds.get(step, 0.0) + time.process_time() - start
                yield item

        return timed


def breakdown(records: list[StreamRecord], n: int) -> None:
    """Print where one handler run spends its CPU, in microseconds per reading, step by step."""
    timer = StepTimer()
    patches = [
        (ColumnDecoder, "decode", timer.wrap("decode + validate (ColumnDecoder)", ColumnDecoder.decode)),
        (timestream, "rows_of", timer.wrap("Timestream rows grouped by sensor (rows_of)", timestream.rows_of)),
        (
            TimestreamSink,
            "_admissible",
            timer.wrap("admissibility (future, retention, record size)", TimestreamSink._admissible),
        ),
        (timestream, "calls", timer.wrap_iter("request dicts (calls)", timestream.calls)),
        (
            ComplianceArchive,
            "put_batches",
            timer.wrap("archive (Arrow table, Parquet, SHA-256, manifest)", ComplianceArchive.put_batches),
        ),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        seconds, fake, _ = run_handler(records)
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    own = seconds - fake.seconds
    print(f"where the handler's {own:.3f} s go (one run, without the fake), microseconds per reading:")
    for step, spent in timer.seconds.items():
        print(f"  {step}: {spent / n * 1e6:.2f}")
    rest = (own - sum(timer.seconds.values())) / n * 1e6
    print(f"  the rest (event parsing, base64, gunzip, processor bookkeeping, freeing): {rest:.2f}")
    print(f"  total: {own / n * 1e6:.2f}")


def original_handler(event: dict[str, Any], client: FakeTimestreamWrite, database: str, table: str) -> int:
    """The original design's Lambda (seed README), re-implemented: one WriteRecords call per reading.

    Returns how many writes failed (the original printed and went on).
    """
    failed = 0
    thresholds = {"temperature": (10, 80), "vibration": (0, 100), "pressure": (0, 200)}
    for record in event["Records"]:
        payload = json.loads(base64.b64decode(record["kinesis"]["data"]))
        value, stype = payload.get("value", 0), payload.get("type", "unknown")
        low, high = thresholds.get(stype, (-math.inf, math.inf))
        now = str(client.clock.now_ms())
        dims = [
            {"Name": "sensor_id", "Value": payload.get("sensor_id", "unknown")},
            {"Name": "production_line", "Value": payload.get("production_line", "line1")},
        ]
        records = [
            {
                "Dimensions": [*dims, {"Name": "sensor_type", "Value": stype}],
                "MeasureName": "sensor_reading",
                "MeasureValue": str(value),
                "MeasureValueType": "DOUBLE",
                "Time": now,
            }
        ]
        if not low <= value <= high:
            records.append(
                {
                    "Dimensions": [*dims, {"Name": "alert_type", "Value": "threshold_exceeded"}],
                    "MeasureName": "anomaly_alert",
                    "MeasureValue": "1",
                    "MeasureValueType": "BIGINT",
                    "Time": now,
                }
            )
        try:
            client.write_records(DatabaseName=database, TableName=table, Records=records)
        except ClientError:
            failed += 1
    return failed


def run_original(data: list[Reading]) -> tuple[int, int, int]:
    """(Kinesis records, WriteRecords calls, failed writes) of the original design: one raw reading per record."""
    fake = FakeTimestreamWrite(clock=TickingClock(), database="db", table="t", retain=False)
    raw = [
        StreamRecord(
            record_id=str(i),
            data=json.dumps(
                {
                    "sensor_id": r.sensor_id,
                    "production_line": r.line,
                    "type": r.sensor_type,
                    "value": r.value,
                    "timestamp": datetime.fromtimestamp(r.ts_ms / 1000, tz=UTC).isoformat(),
                }
            ).encode(),
            arrival_ms=T0,
        )
        for i, r in enumerate(data)
    ]
    failed = 0
    for i in range(0, len(raw), KINESIS_EVENT_RECORDS):
        failed += original_handler(kinesis_event(raw[i : i + KINESIS_EVENT_RECORDS]), fake, "db", "t")
    return len(raw), fake.calls, failed


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--original-readings", type=int, default=50_000, help="the per-reading baseline is slow")
    parser.add_argument("--breakdown", action="store_true", help="also time each step of one handler run")
    args = parser.parse_args()
    data = readings(args.readings)
    records = gateway_records(data)
    best, best_fake = math.inf, 0.0
    for _ in range(args.repeat):
        seconds, fake, objects = run_handler(records)
        if seconds - fake.seconds < best:
            best, best_fake = seconds - fake.seconds, fake.seconds
    scale = 1_000_000 / args.readings
    alerts = fake.records_received - args.readings
    print(f"{os.cpu_count()} cores visible; single-threaded CPU time (time.process_time), best of {args.repeat}")
    print(
        f"plantwatch handler: {args.readings:,} readings in {len(records)} Kinesis records (events of "
        f"{KINESIS_EVENT_RECORDS}): {best:.3f} s CPU without the fake ({best_fake:.3f} s in the fake) -> "
        f"{args.readings / best:,.0f} readings/s per core ({args.readings / (best + best_fake):,.0f} with the fake)"
    )
    # the fake does the same fixed work in every run: its CPU time shows how busy the machine was
    print(f"  handler CPU / the fake's CPU for the same records: {best / best_fake:.2f} (the fake's work is fixed)")
    print(
        f"  WriteRecords calls: {fake.calls:,} ({fake.records_received:,} records, {alerts:,} of them anomaly_alert), "
        f"archive objects incl. manifest entries: {objects}"
    )
    print(
        f"  per 1M readings: {len(records) * scale:,.0f} Kinesis records, {fake.calls * scale:,.0f} WriteRecords "
        f"calls ({fake.records_received / fake.calls:.1f} records per call)"
    )
    if args.breakdown:
        breakdown(records, args.readings)
    base = data[: args.original_readings]
    start = time.process_time()
    kinesis_records, original_calls, failed = run_original(base)
    seconds = time.process_time() - start
    oscale = 1_000_000 / len(base)
    print(
        f"original per-reading handler: {len(base):,} readings, {seconds:.3f} s CPU (with the fake) -> "
        f"{len(base) / seconds:,.0f} readings/s; {failed} writes failed"
    )
    print(
        f"  per 1M readings: {kinesis_records * oscale:,.0f} Kinesis records, {original_calls * oscale:,.0f} "
        "WriteRecords calls"
    )
    print(
        "per 1M readings, original / plantwatch: "
        f"Kinesis records x{kinesis_records * oscale / (len(records) * scale):,.0f}, "
        f"WriteRecords calls x{original_calls * oscale / (fake.calls * scale):,.1f}"
    )


if __name__ == "__main__":
    main()
