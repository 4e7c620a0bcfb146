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

import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from plantwatch.adapters.timestream_records import MAX_RECORDS_PER_CALL, Call, Rows, calls, dimensions_bytes, rows_of
from plantwatch.contract.columns import Batch
from plantwatch.contract.reading import MAX_FUTURE_MS
from plantwatch.contract.rejection import QuarantineEntry
from plantwatch.ports import Clock, SinkRejection, WriteOutcome

log = logging.getLogger(__name__)
#: (written?, [(index in the request, reason) refused for good])
_Result = tuple[bool, list[tuple[int, str]]]

MAX_RECORD_BYTES: Final = 2048
#: bytes of a record beyond its dimensions: time, version, measure names and values, alert type (bounded)
_RECORD_OVERHEAD: Final = 700
RETRYABLE_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "InternalServerException",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


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
        magnetic_retention_ms: int = 73_000 * 86_400_000,
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
        self.magnetic_retention_ms = magnetic_retention_ms
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.workers = workers
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.calls = 0

    def write(self, batches: Sequence[Batch]) -> WriteOutcome:
        """Write every reading (and alert); retryable failures become ``incomplete``, refusals ``rejected``."""
        now = self.clock.now_ms()
        readings, alerts = rows_of(batches)
        rejected: list[SinkRejection] = []
        readings = self._admissible(readings, now, rejected)
        alerts = self._admissible(alerts, now, rejected)
        written = 0
        incomplete: set[str] = set()
        for rows, start, stop, (ok, refused) in self._send_all(readings, alerts):
            if not ok:
                incomplete.update(rows.keys_between(start, stop))
                continue
            if rows.alert_types is None:
                written += stop - start - len(refused)
            for i, reason in refused:
                if _about_time(reason):
                    # our own checks found its time acceptable: the service's window moved (a retention change,
                    # clock skew), so it can succeed later: hand it back rather than quarantine it
                    log.warning("Timestream refused a record for its time (%s); handing it back", reason)
                    incomplete.add(rows.key(start + i))
                else:
                    rejected.append(self._rejection(rows, start + i, reason))
        return WriteOutcome(
            written=written, duplicate_batches=0, incomplete=tuple(sorted(incomplete)), rejected=tuple(rejected)
        )

    def _send_all(self, readings: Rows, alerts: Rows) -> list[tuple[Rows, int, int, _Result]]:
        """Send every request (in parallel windows when ``workers`` > 1); each request's dicts are dropped once sent."""
        requests = itertools.chain(calls(readings), calls(alerts))
        done: list[tuple[Rows, int, int, _Result]] = []
        count = -(-len(readings) // MAX_RECORDS_PER_CALL) - (-len(alerts) // MAX_RECORDS_PER_CALL)
        if self.workers > 1 and count > 1:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                while window := list(itertools.islice(requests, 4 * self.workers)):
                    results = pool.map(self._send, window)
                    done.extend((c.rows, c.start, c.stop, r) for c, r in zip(window, results, strict=True))
        else:
            done.extend((c.rows, c.start, c.stop, self._send(c)) for c in requests)
        return done

    def _admissible(self, rows: Rows, now_ms: int, rejected: list[SinkRejection]) -> Rows:
        """The rows Timestream can accept; the others are added to ``rejected`` with the reason."""
        future = rows.ts_ms > now_ms + MAX_FUTURE_MS
        oldest = now_ms - (self.magnetic_retention_ms if self.magnetic_writes else self.memory_retention_ms)
        old = rows.ts_ms < oldest
        big_sensor = np.array(
            [dimensions_bytes(s) + _RECORD_OVERHEAD > MAX_RECORD_BYTES for s in rows.sensors], dtype=np.bool_
        )
        big = big_sensor[rows.sensor] if len(big_sensor) else np.zeros(len(rows), dtype=np.bool_)
        bad = future | old | big
        if not bad.any():
            return rows
        too_old = (
            "time is older than the magnetic store retention"
            if self.magnetic_writes
            else "time is older than the memory store retention and magnetic store writes are off"
        )
        for i in np.flatnonzero(bad).tolist():
            if future[i]:
                reason = "time is more than 15 minutes in the future"
            elif old[i]:
                reason = too_old
            else:
                reason = f"record is over {MAX_RECORD_BYTES} bytes"
            rejected.append(self._rejection(rows, i, reason))
        return rows.take(np.flatnonzero(~bad))

    def _send(self, request: Call) -> _Result:
        """Send one request with retries: (written?, [(index, reason) refused for good])."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.calls += 1
                self.client.write_records(
                    DatabaseName=self.database,
                    TableName=self.table,
                    CommonAttributes=request.common,
                    Records=request.records,
                )
                return True, []
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code == "RejectedRecordsException":
                    return True, _refusals(exc.response)
                if code not in RETRYABLE_CODES:
                    log.error("Timestream refused a write with %s: %s", code, exc)
                    return False, []
                problem = code
            except BotoCoreError as exc:  # timeouts, connection resets
                problem = type(exc).__name__
            if attempt < self.max_attempts:
                delay = self.rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
                log.info("Timestream %s (attempt %d); retrying in %.3f s", problem, attempt, delay)
                self.sleep(delay)
        log.warning(
            "Timestream failing after %d attempts; handing %d records back",
            self.max_attempts,
            request.stop - request.start,
        )
        return False, []

    def _rejection(self, rows: Rows, i: int, reason: str) -> SinkRejection:
        return SinkRejection(
            batch_key=rows.key(i), sensor_id=rows.sensor_id(i), ts_ms=int(rows.ts_ms[i]), reason=f"Timestream: {reason}"
        )

    def record_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Nothing to do: quarantine entries are archived and counted in metrics, not stored in Timestream."""


def _about_time(reason: str) -> bool:
    """Whether a rejection is about the record's time being outside the window the table accepts."""
    text = reason.lower()
    return "ExistingVersion" not in reason and ("retention" in text or "time range" in text or "future" in text)


def _refusals(response: dict[str, Any]) -> list[tuple[int, str]]:
    out = []
    for rejected in response.get("RejectedRecords", []):
        reason = str(rejected.get("Reason", "rejected"))
        if "ExistingVersion" in rejected:
            reason = f"{reason} (ExistingVersion {rejected['ExistingVersion']}: a different value is stored)"
        out.append((int(rejected["RecordIndex"]), reason))
    return out
