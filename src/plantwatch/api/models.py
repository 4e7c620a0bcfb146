"""Response models of the API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Health(BaseModel):
    """Liveness and what the platform holds."""

    status: str = Field(examples=["ok"])
    readings: int
    anomalies: int
    batches: int
    quarantined: int
    components: dict[str, int | float | str | bool] = Field(default_factory=dict)


class Sensor(BaseModel):
    """A sensor of the catalogue."""

    plant: str
    line: str
    asset: str
    sensor_id: str
    sensor_type: str
    unit: str
    readings: int
    last_ts: datetime | None


class RawReading(BaseModel):
    """One stored reading with its score."""

    ts: datetime
    value: float
    score: float
    anomaly: bool
    reasons: list[str]


class Bucket(BaseModel):
    """Aggregates of one time bucket."""

    ts: datetime = Field(description="Start of the bucket (UTC)")
    avg: float
    min: float
    max: float
    count: int
    anomalies: int


class ReadingsPage(BaseModel):
    """Readings of one sensor: raw (``readings``) or bucketed (``buckets``)."""

    sensor_id: str
    start: datetime
    end: datetime
    bucket_seconds: int | None
    readings: list[RawReading] | None = None
    buckets: list[Bucket] | None = None


class Anomaly(BaseModel):
    """An anomalous reading and what flagged it."""

    plant: str
    line: str
    asset: str
    sensor_id: str
    sensor_type: str
    unit: str
    ts: datetime
    value: float
    score: float
    reasons: list[str]
    model: str


class AnalyticsRow(BaseModel):
    """The original design's analytics row: average and count per sensor over the last hour."""

    sensor_id: str
    production_line: str
    sensor_type: str
    avg_value: float
    reading_count: int
