"""The stream processor's configuration: environment variables only, validated once at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import msgspec

#: The original design's Timestream names (project_name with '-' as '_', plus the design's suffixes).
DEFAULT_TIMESTREAM_DATABASE = "smart_manufacturing_iot_analytics_platform_sensor_database"
DEFAULT_TIMESTREAM_TABLE = "sensor_readings"


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        """Settings from ``PLANTWATCH_*`` and ``TIMESTREAM_*`` variables; raises ValueError naming a bad one."""
        env = os.environ if env is None else env
        names = {
            "sink": "PLANTWATCH_SINK",
            "timestream_database": "TIMESTREAM_DATABASE",
            "timestream_table": "TIMESTREAM_TABLE",
            "duckdb_path": "PLANTWATCH_DUCKDB_PATH",
            "archive_url": "PLANTWATCH_ARCHIVE_URL",
            "legacy_plant": "PLANTWATCH_LEGACY_PLANT",
            "memory_retention_hours": "TIMESTREAM_MEMORY_RETENTION_HOURS",
            "magnetic_writes": "TIMESTREAM_MAGNETIC_WRITES",
            "magnetic_retention_days": "TIMESTREAM_MAGNETIC_RETENTION_DAYS",
        }
        raw: dict[str, object] = {}
        for field, var in names.items():
            if var in env and env[var] != "":
                value: object = env[var]
                if field in ("memory_retention_hours", "magnetic_retention_days"):
                    value = int(env[var]) if env[var].isdigit() else env[var]
                if field == "magnetic_writes":
                    value = env[var].lower() in {"1", "true", "yes"}
                raw[field] = value
        try:
            settings = msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"bad stream-processor configuration: {exc} (see docs/cloud.md)") from exc
        if not settings.archive_url:
            raise ValueError("PLANTWATCH_ARCHIVE_URL is required: s3://bucket/prefix or a local directory")
        return settings
