"""A contract fake of Timestream for LiveAnalytics' WriteRecords (moto stores nothing and checks nothing).

It enforces what the service documents: at most 100 records per call; a record at most 2 KB; times at most
15 minutes in the future and inside the memory store's retention, or the magnetic store's when magnetic
writes are enabled; one value per (dimensions, measure, time) in a request; a different value for a stored
key only with a higher Version, else a RejectedRecord with ExistingVersion. Errors are botocore ClientErrors
shaped like the real ones (ThrottlingException on demand, RejectedRecordsException with RejectedRecords).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Final

import msgspec
from botocore.exceptions import ClientError

from plantwatch.ports import Clock

MAX_RECORDS: Final = 100
MAX_RECORD_BYTES: Final = 2048
MAX_FUTURE_MS: Final = 15 * 60 * 1000
_UNIT_MS: Final = {"MILLISECONDS": 1, "SECONDS": 1000, "MICROSECONDS": 0.001, "NANOSECONDS": 0.000001}

Key = tuple[tuple[tuple[str, str], ...], str, int]


def client_error(code: str, message: str, **extra: Any) -> ClientError:
    """A ClientError as botocore raises it for WriteRecords."""
    return ClientError({"Error": {"Code": code, "Message": message}, **extra}, "WriteRecords")


class FakeTimestreamWrite:
    """Stands in for ``boto3.client("timestream-write")``: ``write_records`` only, thread-safe."""

    def __init__(
        self,
        *,
        clock: Clock,
        database: str,
        table: str,
        memory_retention_ms: int = 6 * 3600 * 1000,
        magnetic_retention_ms: int = 365 * 86_400_000,
        magnetic_writes: bool = True,
        throttle: Callable[[int], bool] | None = None,
        retain: bool = True,
    ) -> None:
        self.clock = clock
        self.database = database
        self.table = table
        self.memory_retention_ms = memory_retention_ms
        self.magnetic_retention_ms = magnetic_retention_ms
        self.magnetic_writes = magnetic_writes
        self.throttle = throttle
        #: keep written rows (needed for ExistingVersion); a benchmark may turn it off to measure only the client
        self.retain = retain
        self.calls = 0
        self.records_received = 0
        self.rows: dict[Key, tuple[int, tuple[tuple[str, str, str], ...]]] = {}
        self._lock = threading.Lock()

    def write_records(
        self,
        *,
        DatabaseName: str,  # noqa: N803 - boto3's parameter names
        TableName: str,  # noqa: N803
        Records: list[dict[str, Any]],  # noqa: N803
        CommonAttributes: dict[str, Any] | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        """Validate and store records as Timestream would, raising the errors it would."""
        with self._lock:
            self.calls += 1
            if self.throttle is not None and self.throttle(self.calls):
                raise client_error("ThrottlingException", "Rate exceeded")
            if (DatabaseName, TableName) != (self.database, self.table):
                raise client_error("ResourceNotFoundException", f"table {DatabaseName}.{TableName} does not exist")
            if not 1 <= len(Records) <= MAX_RECORDS:
                raise client_error(
                    "ValidationException",
                    f"1 validation error detected: Value at 'records' failed to satisfy constraint: "
                    f"Member must have length less than or equal to {MAX_RECORDS}",
                )
            self.records_received += len(Records)
            now = self.clock.now_ms()
            rejected: list[dict[str, Any]] = []
            in_request: dict[Key, tuple[tuple[str, str, str], ...]] = {}
            for index, record in enumerate(Records):
                merged = _merge(CommonAttributes or {}, record)
                problem, key, values = self._check(merged, now)
                if problem is None and key in in_request and in_request[key] != values:
                    problem = "Duplicate data: the request has another value for the same dimensions, time, measure."
                if problem is not None:
                    rejected.append({"RecordIndex": index, "Reason": problem})
                    continue
                in_request[key] = values
                if not self.retain:
                    continue
                version = int(merged.get("Version", 1))
                stored = self.rows.get(key)
                if stored is not None and stored[1] != values and version <= stored[0]:
                    rejected.append(
                        {
                            "RecordIndex": index,
                            "Reason": "The record version is not higher than the existing version.",
                            "ExistingVersion": stored[0],
                        }
                    )
                    continue
                if stored is None or version >= stored[0]:
                    self.rows[key] = (version, values)
            if rejected:
                raise client_error(
                    "RejectedRecordsException", "One or more records have been rejected.", RejectedRecords=rejected
                )
            return {"RecordsIngested": {"Total": len(Records), "MemoryStore": len(Records), "MagneticStore": 0}}

    def _check(self, merged: dict[str, Any], now: int) -> tuple[str | None, Key, tuple[tuple[str, str, str], ...]]:
        dims = tuple(sorted((d["Name"], d["Value"]) for d in merged.get("Dimensions", [])))
        name = str(merged.get("MeasureName", ""))
        unit = _UNIT_MS.get(merged.get("TimeUnit", "MILLISECONDS"), 1)
        ts = int(int(merged.get("Time", "0")) * unit)
        key: Key = (dims, name, ts)
        kind = merged.get("MeasureValueType")
        if kind == "MULTI":
            values = tuple((m["Name"], m["Type"], m["Value"]) for m in merged.get("MeasureValues", []))
        else:
            values = (("", str(kind), str(merged.get("MeasureValue"))),)
        if len(msgspec.json.encode(merged)) > MAX_RECORD_BYTES:
            return f"Record size exceeds the {MAX_RECORD_BYTES}-byte limit.", key, values
        if not name or not dims or any(not v for _, v in dims):
            return "Measure name and dimension values must not be empty.", key, values
        for _, kind_, value in values:
            if kind_ == "DOUBLE" and not math.isfinite(float(value)):
                return "DOUBLE measure values must be finite.", key, values
        if ts > now + MAX_FUTURE_MS:
            return "The record timestamp is more than 15 minutes in the future.", key, values
        if ts < now - self.memory_retention_ms and (not self.magnetic_writes or ts < now - self.magnetic_retention_ms):
            return "The record timestamp is outside the time range of the data retention.", key, values
        return None, key, values

    def measures(self, name: str) -> dict[Key, tuple[int, tuple[tuple[str, str, str], ...]]]:
        """Stored rows of one measure name."""
        with self._lock:
            return {k: v for k, v in self.rows.items() if k[1] == name}


def _merge(common: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    merged = {**common, **record}
    merged["Dimensions"] = [*common.get("Dimensions", []), *record.get("Dimensions", [])]
    return merged
