"""Response models of the API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """Why a request was refused (401, 404, 429, 501)."""

    detail: str


class Health(BaseModel):
    """Liveness and what the platform holds in the caller's scope."""

    status: str = Field(examples=["ok"])
    readings: int
    anomalies: int
    batches: int
    quarantined: int
    components: dict[str, int | float | str | bool] = Field(default_factory=dict)


class Sensor(BaseModel):
    """A sensor of the catalogue with its latest reading."""

    plant: str
    line: str
    asset: str
    sensor_id: str
    sensor_type: str
    unit: str
    model: str
    readings: int
    last_ts: datetime | None
    last_value: float | None = None
    last_anomaly: bool | None = None


class Plant(BaseModel):
    """A plant the caller may read."""

    plant: str
    lines: list[str]
    sensors: int
    readings: int
    last_ts: datetime | None


class Line(BaseModel):
    """A production line."""

    plant: str
    line: str
    assets: list[str]
    sensors: int
    last_ts: datetime | None


class Asset(BaseModel):
    """A machine on a line and its sensors."""

    plant: str
    line: str
    asset: str
    sensors: list[str]
    last_ts: datetime | None


class RawReading(BaseModel):
    """One stored reading with its score."""

    ts: datetime
    value: float
    score: float
    anomaly: bool
    reasons: list[str]
    model: str = ""


class Bucket(BaseModel):
    """Aggregates of one time bucket."""

    ts: datetime = Field(description="Start of the bucket (UTC instant; local-time aligned when tz= is given)")
    avg: float
    min: float
    max: float
    count: int
    anomalies: int


class ReadingsPage(BaseModel):
    """Readings of one sensor: raw (``readings``, paged by ``next_start``) or bucketed (``buckets``)."""

    sensor_id: str
    start: datetime
    end: datetime
    bucket_seconds: int | None
    tz: str | None = None
    readings: list[RawReading] | None = None
    buckets: list[Bucket] | None = None
    next_start: datetime | None = Field(default=None, description="Pass as start= to get the next page")


class SensorSeries(BaseModel):
    """The buckets of one sensor of a line."""

    plant: str
    line: str
    sensor_id: str
    asset: str
    sensor_type: str
    unit: str
    buckets: list[Bucket]


class LineSeries(BaseModel):
    """Bucketed readings of every sensor of a line, with the anomalies in the range (chart markers)."""

    plant: str | None
    line: str
    start: datetime
    end: datetime
    bucket_seconds: int
    tz: str | None
    sensors: list[SensorSeries]


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


class AlertOut(BaseModel):
    """An alert and its acknowledgement."""

    alert_id: str
    plant: str
    line: str
    asset: str
    sensor_id: str
    kind: str
    state: str
    raised_at: datetime
    cleared_at: datetime | None
    reasons: list[str]
    score: float
    gateway_id: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None


class Acknowledgement(BaseModel):
    """What an operator says when acknowledging an alert."""

    note: str = Field(default="", max_length=500)


class AuditEntryOut(BaseModel):
    """One entry of the hash-chained audit log."""

    seq: int
    at: datetime
    actor: str
    action: str
    plant: str
    alert_id: str
    note: str
    prev_hash: str
    hash: str


class AuditLog(BaseModel):
    """Audit entries of the caller's plants, and whether the whole chain verifies."""

    chain_intact: bool
    first_broken_seq: int | None
    entries: list[AuditEntryOut]


class ModelInUse(BaseModel):
    """A model version recorded on a line's readings."""

    name: str
    version: str
    sensors: int
    last_ts: datetime | None


class DriftOut(BaseModel):
    """Drift of a line's forest scores against the training distribution of the model that scored them."""

    model_name: str
    model_version: str
    psi: float = Field(description="population stability index of the merged window against training")
    threshold: float = Field(description="PSI above which the window counts as drifted")
    drifted: bool = Field(description="PSI over the threshold with enough scores (judged on partial windows too)")
    scores: int = Field(description="forest scores in the window")
    window_start: datetime
    window_end: datetime
    summaries: int = Field(
        description="summary windows merged into this figure (each holds every gateway of the line's summary of it)"
    )
    summaries_per_check: int = Field(description="windows of a full check (24 hourly ones = one daily cycle)")
    status: Literal["ok", "drifted", "partial"] = Field(
        description="partial: fewer windows than a full check holds; the figure is provisional"
    )
    retrain_requested_at: datetime | None = Field(
        default=None, description="when this line's drift last asked for retraining"
    )


class LineModels(BaseModel):
    """Model versions and drift figures of a line (drift is empty until its gateway reports score summaries)."""

    plant: str
    line: str
    models: list[ModelInUse]
    drift: list[DriftOut] = Field(default_factory=list)


class LatestReading(BaseModel):
    """The latest reading of a sensor."""

    asset: str
    sensor_id: str
    sensor_type: str
    unit: str
    ts: datetime
    value: float
    anomaly: bool


class LineOverview(BaseModel):
    """Live state of a line: latest value per sensor, open alerts, models and a health score."""

    plant: str
    line: str
    health_score: float = Field(description="100 x (1 - anomalous share, last 15 min) - 10 per unacknowledged alert")
    anomaly_share_15m: float
    open_alerts: int
    models: list[str]
    last_ts: datetime | None
    sensors: list[LatestReading]


class AnalyticsRow(BaseModel):
    """The original design's analytics row: average and count per sensor over the last hour."""

    sensor_id: str
    production_line: str
    sensor_type: str
    avg_value: float
    reading_count: int
