"""Timestream for LiveAnalytics sink: multi-measure records, 100 per WriteRecords call, idempotent by Version.

Each reading becomes one multi-measure record ``reading`` (value DOUBLE, score DOUBLE, anomaly BOOLEAN) with
dimensions plant, line, asset, sensor_id, sensor_type; each anomalous reading also becomes an
``anomaly_alert`` record (BIGINT 1, dimension alert_type), as the original design wrote. ``Version`` is the
batch's sequence number: a re-delivered batch rewrites identical values (harmless); a later batch carrying
a different value for the same sensor and time overwrites an earlier one; an older one is refused
(ExistingVersion) and quarantined. Throttling and timeouts are retried with exponential backoff and full
jitter; what still fails is reported as incomplete so the caller hands it back to Kinesis.
boto3 calls made here: timestream-write WriteRecords (and DescribeEndpoints, done by boto3 itself).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from plantwatch.contract.batch import ScoredBatch
from plantwatch.contract.reading import MAX_FUTURE_MS
from plantwatch.contract.rejection import QuarantineEntry
from plantwatch.ports import Clock, SinkRejection, WriteOutcome

log = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL: Final = 100
MAX_RECORD_BYTES: Final = 2048
READING_MEASURE: Final = "reading"
ALERT_MEASURE: Final = "anomaly_alert"
DIMENSIONS: Final = ("plant", "line", "asset", "sensor_id", "sensor_type")
RETRYABLE_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "InternalServerException",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

Record = dict[str, Any]


class _Item(msgspec.Struct, kw_only=True):
    """One record to write and what it stands for."""

    batch_key: str
    sensor_id: str
    ts_ms: int
    reading: bool
    record: Record


class TimestreamSink:
    """Writes scored batches to a Timestream table through a ``timestream-write`` client (or a fake of it)."""

    def __init__(
        self,
        client: Any,
        *,
        database: str,
        table: str,
        clock: Clock,
        memory_retention_ms: int = 6 * 3600 * 1000,
        magnetic_writes: bool = True,
        max_attempts: int = 6,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
        workers: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.database = database
        self.table = table
        self.clock = clock
        self.memory_retention_ms = memory_retention_ms
        self.magnetic_writes = magnetic_writes
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.workers = workers
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.calls = 0

    # --- building records -------------------------------------------------------------------------------
    def items(self, batches: Sequence[ScoredBatch]) -> list[_Item]:
        """Every record the batches become, sorted so records of one sensor sit together."""
        out: list[_Item] = []
        for batch in batches:
            version = batch.seq
            for scored in batch.readings:
                r = scored.reading
                dims = [
                    {"Name": "plant", "Value": r.plant},
                    {"Name": "line", "Value": r.line},
                    {"Name": "asset", "Value": r.asset},
                    {"Name": "sensor_id", "Value": r.sensor_id},
                    {"Name": "sensor_type", "Value": r.sensor_type},
                ]
                time_ = str(r.ts_ms)
                out.append(
                    _Item(
                        batch_key=batch.key,
                        sensor_id=r.sensor_id,
                        ts_ms=r.ts_ms,
                        reading=True,
                        record={
                            "Dimensions": dims,
                            "MeasureName": READING_MEASURE,
                            "MeasureValueType": "MULTI",
                            "MeasureValues": [
                                {"Name": "value", "Value": repr(r.value), "Type": "DOUBLE"},
                                {"Name": "score", "Value": repr(scored.score), "Type": "DOUBLE"},
                                {"Name": "anomaly", "Value": "true" if scored.anomaly else "false", "Type": "BOOLEAN"},
                            ],
                            "Time": time_,
                            "Version": version,
                        },
                    )
                )
                if scored.anomaly:
                    alert_type = ",".join(scored.reasons) or "anomaly"
                    out.append(
                        _Item(
                            batch_key=batch.key,
                            sensor_id=r.sensor_id,
                            ts_ms=r.ts_ms,
                            reading=False,
                            record={
                                "Dimensions": [*dims, {"Name": "alert_type", "Value": alert_type[:256]}],
                                "MeasureName": ALERT_MEASURE,
                                "MeasureValueType": "BIGINT",
                                "MeasureValue": "1",
                                "Time": time_,
                                "Version": version,
                            },
                        )
                    )
        out.sort(key=lambda item: (item.record["MeasureName"], item.sensor_id, item.ts_ms))
        return out

    def _admissible(self, item: _Item, now_ms: int) -> str | None:
        """Why Timestream would refuse this record for good, or None."""
        if item.ts_ms > now_ms + MAX_FUTURE_MS:
            return "time is more than 15 minutes in the future"
        if not self.magnetic_writes and item.ts_ms < now_ms - self.memory_retention_ms:
            return "time is older than the memory store retention and magnetic store writes are off"
        if len(msgspec.json.encode(item.record)) > MAX_RECORD_BYTES:
            return f"record is over {MAX_RECORD_BYTES} bytes"
        return None

    # --- writing ----------------------------------------------------------------------------------------
    def write(self, batches: Sequence[ScoredBatch]) -> WriteOutcome:
        """Write every reading (and alert); retryable failures become ``incomplete``, refusals ``rejected``."""
        now = self.clock.now_ms()
        rejected: list[SinkRejection] = []
        writable: list[_Item] = []
        for item in self.items(batches):
            reason = self._admissible(item, now)
            if reason is None:
                writable.append(item)
            else:
                rejected.append(self._rejection(item, reason))
        chunks = [writable[i : i + MAX_RECORDS_PER_CALL] for i in range(0, len(writable), MAX_RECORDS_PER_CALL)]
        if self.workers > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = list(pool.map(self._write_chunk, chunks))
        else:
            results = [self._write_chunk(chunk) for chunk in chunks]
        written = 0
        incomplete: set[str] = set()
        for ok, chunk_rejected, chunk in results:
            if not ok:
                incomplete.update(item.batch_key for item in chunk)
                continue
            refused = {index for index, _ in chunk_rejected}
            written += sum(1 for i, item in enumerate(chunk) if item.reading and i not in refused)
            rejected.extend(self._rejection(chunk[i], reason) for i, reason in chunk_rejected)
        return WriteOutcome(
            written=written, duplicate_batches=0, incomplete=tuple(sorted(incomplete)), rejected=tuple(rejected)
        )

    def _write_chunk(self, chunk: list[_Item]) -> tuple[bool, list[tuple[int, str]], list[_Item]]:
        """Write one call's worth: (written?, [(index, reason) refused], chunk)."""
        common, records = common_attributes([item.record for item in chunk])
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.calls += 1
                self.client.write_records(
                    DatabaseName=self.database, TableName=self.table, CommonAttributes=common, Records=records
                )
                return True, [], chunk
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code == "RejectedRecordsException":
                    return True, _refusals(exc.response), chunk
                if code not in RETRYABLE_CODES:
                    log.error("Timestream refused a write with %s: %s", code, exc)
                    return False, [], chunk
                problem = code
            except BotoCoreError as exc:  # timeouts, connection resets
                problem = type(exc).__name__
            if attempt < self.max_attempts:
                delay = self.rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
                log.info("Timestream %s (attempt %d); retrying in %.3f s", problem, attempt, delay)
                self.sleep(delay)
        log.warning(
            "Timestream still failing after %d attempts; handing %d records back", self.max_attempts, len(chunk)
        )
        return False, [], chunk

    def _rejection(self, item: _Item, reason: str) -> SinkRejection:
        return SinkRejection(
            batch_key=item.batch_key, sensor_id=item.sensor_id, ts_ms=item.ts_ms, reason=f"Timestream: {reason}"
        )

    def record_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Nothing to do: quarantine entries are archived and counted in metrics, not stored in Timestream."""


def _refusals(response: dict[str, Any]) -> list[tuple[int, str]]:
    out = []
    for rejected in response.get("RejectedRecords", []):
        reason = str(rejected.get("Reason", "rejected"))
        if "ExistingVersion" in rejected:
            reason = f"{reason} (ExistingVersion {rejected['ExistingVersion']}: a different value is stored)"
        out.append((int(rejected["RecordIndex"]), reason))
    return out


def common_attributes(records: Sequence[Record]) -> tuple[Record, list[Record]]:
    """Factor out what every record shares (dimensions, measure name and type, version) into CommonAttributes."""
    common: Record = {"TimeUnit": "MILLISECONDS"}
    first = records[0]
    for field in ("MeasureName", "MeasureValueType", "Version"):
        if all(r.get(field) == first.get(field) for r in records):
            common[field] = first[field]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        for d in r["Dimensions"]:
            counts[(d["Name"], d["Value"])] += 1
    shared = [d for d in first["Dimensions"] if counts[(d["Name"], d["Value"])] == len(records)]
    if shared:
        common["Dimensions"] = shared
    shared_names = {d["Name"] for d in shared}
    out = []
    for r in records:
        slim = {k: v for k, v in r.items() if k not in common}
        slim["Dimensions"] = [d for d in r["Dimensions"] if d["Name"] not in shared_names]
        if not slim["Dimensions"]:
            del slim["Dimensions"]
        out.append(slim)
    return common, out
