"""Timestream WriteRecords requests from scored batches: rows grouped by sensor, 100 per call, shared parts common.

Pure (no I/O). A call's ``CommonAttributes`` carry what all its records share (measure name and type, time
unit, version, and the dimensions every sensor in the call has in common), so each record carries only its
time, its measures and the dimensions that differ.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final, NamedTuple

from plantwatch.contract.batch import ScoredBatch

MAX_RECORDS_PER_CALL: Final = 100
READING_MEASURE: Final = "reading"
ALERT_MEASURE: Final = "anomaly_alert"
DIMENSIONS: Final = ("plant", "line", "asset", "sensor_id", "sensor_type")
_ANOMALY: Final = {
    True: {"Name": "anomaly", "Value": "true", "Type": "BOOLEAN"},
    False: {"Name": "anomaly", "Value": "false", "Type": "BOOLEAN"},
}

#: (plant, line, asset, sensor_id, sensor_type)
Sensor = tuple[str, str, str, str, str]
Record = dict[str, Any]


class Row(NamedTuple):
    """One record to write: a reading (``alert_type`` None) or its anomaly alert."""

    sensor: Sensor
    ts_ms: int
    version: int
    batch_key: str
    value: float
    score: float
    anomaly: bool
    alert_type: str | None


class Call(NamedTuple):
    """One WriteRecords request and the rows it stands for (same order as ``records``)."""

    common: Record
    records: list[Record]
    rows: list[Row]


def rows_of(batches: Sequence[ScoredBatch]) -> tuple[list[Row], list[Row]]:
    """(readings, alerts), each grouped by sensor in first-seen order, in batch order within a sensor."""
    readings: dict[Sensor, list[Row]] = {}
    alerts: list[Row] = []
    for batch in batches:
        key, version = batch.key, batch.seq
        for scored in batch.readings:
            r = scored.reading
            sensor = (r.plant, r.line, r.asset, r.sensor_id, r.sensor_type)
            row = Row(sensor, r.ts_ms, version, key, r.value, scored.score, scored.anomaly, None)
            group = readings.get(sensor)
            if group is None:
                readings[sensor] = [row]
            else:
                group.append(row)
            if scored.anomaly:
                alerts.append(row._replace(alert_type=",".join(scored.reasons)[:256] or "anomaly"))
    return [row for group in readings.values() for row in group], alerts


def dimensions_bytes(sensor: Sensor) -> int:
    """Bytes the sensor's dimension names and values take in a record."""
    return sum(len(name) + len(value) for name, value in zip(DIMENSIONS, sensor, strict=True))


def calls(rows: list[Row]) -> Iterator[Call]:
    """WriteRecords requests of at most 100 records for ``rows`` (all readings or all alerts)."""
    for start in range(0, len(rows), MAX_RECORDS_PER_CALL):
        yield _call(rows[start : start + MAX_RECORDS_PER_CALL])


def _call(rows: list[Row]) -> Call:
    sensors = list(dict.fromkeys(row.sensor for row in rows))
    first = sensors[0]
    shared = [i for i in range(len(DIMENSIONS)) if all(s[i] == first[i] for s in sensors)]
    common: Record = {"TimeUnit": "MILLISECONDS"}
    if shared:
        common["Dimensions"] = [{"Name": DIMENSIONS[i], "Value": first[i]} for i in shared]
    own = {
        s: [{"Name": DIMENSIONS[i], "Value": s[i]} for i in range(len(DIMENSIONS)) if i not in shared] for s in sensors
    }
    versions = {row.version for row in rows}
    same_version = len(versions) == 1
    if same_version:
        common["Version"] = rows[0].version
    records: list[Record]
    if rows[0].alert_type is None:
        common["MeasureName"] = READING_MEASURE
        common["MeasureValueType"] = "MULTI"
        records = [
            {
                "Time": str(row.ts_ms),
                "MeasureValues": [
                    {"Name": "value", "Value": repr(row.value), "Type": "DOUBLE"},
                    {"Name": "score", "Value": repr(row.score), "Type": "DOUBLE"},
                    _ANOMALY[row.anomaly],
                ],
            }
            for row in rows
        ]
        if len(shared) < len(DIMENSIONS):  # some dimensions differ between the call's sensors
            for record, row in zip(records, rows, strict=True):
                record["Dimensions"] = own[row.sensor]
    else:
        common["MeasureName"] = ALERT_MEASURE
        common["MeasureValueType"] = "BIGINT"
        records = [
            {
                "Time": str(row.ts_ms),
                "MeasureValue": "1",
                "Dimensions": [*own[row.sensor], {"Name": "alert_type", "Value": row.alert_type}],
            }
            for row in rows
        ]
    if not same_version:
        for record, row in zip(records, rows, strict=True):
            record["Version"] = row.version
    return Call(common, records, rows)
