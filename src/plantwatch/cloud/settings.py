"""The stream processor's configuration: environment variables only, validated once at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import msgspec

#: The original design's Timestream names (project_name with '-' as '_', plus the design's suffixes).
DEFAULT_TIMESTREAM_DATABASE = "smart_manufacturing_iot_analytics_platform_sensor_database"
DEFAULT_TIMESTREAM_TABLE = "sensor_readings"


def _number(text: str) -> float | str:
    """A float, or the text itself (so validation names the variable)."""
    try:
        return float(text)
    except ValueError:
        return text


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the stream processor reads from its environment (see docs/cloud.md)."""

    sink: Literal["timestream", "duckdb"] = "timestream"
    timestream_database: str = DEFAULT_TIMESTREAM_DATABASE
    timestream_table: str = DEFAULT_TIMESTREAM_TABLE
    duckdb_path: str = "/tmp/plantwatch.duckdb"  # noqa: S108 - Lambda's only writable place
    archive_url: str = ""
    legacy_plant: str = "default"
    memory_retention_hours: int = 6
    magnetic_writes: bool = True
    magnetic_retention_days: int = 73_000
    #: DynamoDB table of alerts; empty: alert records are not stored (they are quarantined as bad batches)
    alerts_table: str = ""
    #: days a cleared alert stays in the alerts table (its TTL); 0: for ever
    alert_retention_days: int = 0
    #: DynamoDB table of score summaries (drift); empty: summaries are quarantined as unknown input
    drift_table: str = ""
    #: function asked (asynchronously) to retrain a drifted line; empty: requests are only recorded
    retrain_function: str = ""
    drift_psi_threshold: float = 0.25
    #: where a gateway's plant is looked up: "iot" (its thing attribute ``plant``) or "none" (payloads trusted)
    gateway_registry: Literal["iot", "none"] = "none"
    #: the IoT control plane's endpoint (a VPC endpoint's own DNS name); empty: boto3's default
    iot_endpoint_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        """Settings from ``PLANTWATCH_*`` and ``TIMESTREAM_*`` variables; raises ValueError naming a bad one."""
        env = os.environ if env is None else env
        raw: dict[str, object] = {}
        # each variable is read by its literal name, so tests/infra can check them against Terraform
        for field, value in (
            ("sink", env.get("PLANTWATCH_SINK")),
            ("timestream_database", env.get("TIMESTREAM_DATABASE")),
            ("timestream_table", env.get("TIMESTREAM_TABLE")),
            ("duckdb_path", env.get("PLANTWATCH_DUCKDB_PATH")),
            ("archive_url", env.get("PLANTWATCH_ARCHIVE_URL")),
            ("legacy_plant", env.get("PLANTWATCH_LEGACY_PLANT")),
            ("memory_retention_hours", env.get("TIMESTREAM_MEMORY_RETENTION_HOURS")),
            ("magnetic_writes", env.get("TIMESTREAM_MAGNETIC_WRITES")),
            ("magnetic_retention_days", env.get("TIMESTREAM_MAGNETIC_RETENTION_DAYS")),
            ("alerts_table", env.get("PLANTWATCH_ALERTS_TABLE")),
            ("alert_retention_days", env.get("PLANTWATCH_ALERT_RETENTION_DAYS")),
            ("drift_table", env.get("PLANTWATCH_DRIFT_TABLE")),
            ("retrain_function", env.get("PLANTWATCH_RETRAIN_FUNCTION")),
            ("drift_psi_threshold", env.get("PLANTWATCH_DRIFT_PSI_THRESHOLD")),
            ("gateway_registry", env.get("PLANTWATCH_GATEWAY_REGISTRY")),
            ("iot_endpoint_url", env.get("PLANTWATCH_IOT_ENDPOINT_URL")),
        ):
            if not value:
                continue
            if field in ("memory_retention_hours", "magnetic_retention_days", "alert_retention_days"):
                raw[field] = int(value) if value.isdigit() else value
            elif field == "drift_psi_threshold":
                raw[field] = _number(value)
            elif field == "magnetic_writes":
                raw[field] = value.lower() in {"1", "true", "yes"}
            else:
                raw[field] = value
        try:
            settings = msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"bad stream-processor configuration: {exc} (see docs/cloud.md)") from exc
        if not settings.archive_url:
            raise ValueError("PLANTWATCH_ARCHIVE_URL is required: s3://bucket/prefix or a local directory")
        return settings
