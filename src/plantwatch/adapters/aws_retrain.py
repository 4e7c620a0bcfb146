"""Composition root of the retraining job on AWS: S3 archive in, S3 registry, Greengrass out (boto3)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import msgspec

from plantwatch.adapters.archive_reader import read_archive
from plantwatch.adapters.greengrass_publisher import GreengrassModelPublisher
from plantwatch.adapters.object_store import S3ObjectStore
from plantwatch.domain.simulator import DAY_MS, SimulationConfig
from plantwatch.models.datasets import reading_assets
from plantwatch.models.pipeline import Periods
from plantwatch.models.registry import ModelRegistry
from plantwatch.models.trainer import TrainConfig
from plantwatch.services.retraining import drift_line, of_line, retrain, simulator_evaluator

log = logging.getLogger(__name__)


class RetrainSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration of the job, from ``PLANTWATCH_*`` environment variables."""

    archive_bucket: str
    archive_prefix: str = ""
    registry_bucket: str
    registry_prefix: str = "registry"
    artifact_bucket: str
    #: ARN of a line's thing group, with ``{line}`` in it, e.g. arn:aws:iot:eu-west-1:123:thinggroup/plantwatch-{line}
    thing_group_arn_template: str
    plant: str = "plant-1"
    window_days: float = 7.0
    train: TrainConfig = msgspec.field(default_factory=TrainConfig)
    simulation: SimulationConfig = msgspec.field(default_factory=SimulationConfig)
    periods: Periods = msgspec.field(default_factory=Periods)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RetrainSettings:
        """Read ``PLANTWATCH_ARCHIVE_BUCKET`` etc.; ``PLANTWATCH_TRAIN``/``_SIMULATION``/``_PERIODS`` hold JSON."""
        # each variable is read by its literal name, so tests/infra can check them against Terraform
        given = {
            "archive_bucket": env.get("PLANTWATCH_ARCHIVE_BUCKET"),
            "archive_prefix": env.get("PLANTWATCH_ARCHIVE_PREFIX"),
            "registry_bucket": env.get("PLANTWATCH_REGISTRY_BUCKET"),
            "registry_prefix": env.get("PLANTWATCH_REGISTRY_PREFIX"),
            "artifact_bucket": env.get("PLANTWATCH_ARTIFACT_BUCKET"),
            "thing_group_arn_template": env.get("PLANTWATCH_THING_GROUP_ARN_TEMPLATE"),
            "plant": env.get("PLANTWATCH_PLANT"),
            "window_days": env.get("PLANTWATCH_WINDOW_DAYS"),
            "train": env.get("PLANTWATCH_TRAIN"),
            "simulation": env.get("PLANTWATCH_SIMULATION"),
            "periods": env.get("PLANTWATCH_PERIODS"),
        }
        raw: dict[str, Any] = {}
        for field, value in given.items():
            if value is not None:
                raw[field] = msgspec.json.decode(value) if field in ("train", "simulation", "periods") else value
        return msgspec.convert(raw, cls, strict=False)


class RetrainJob:
    """Reads the archive window ending at the event's time, retrains every line, publishes what is promoted."""

    def __init__(self, settings: RetrainSettings, *, s3: Any, greengrass: Any) -> None:
        self.settings = settings
        self.archive = S3ObjectStore(s3, settings.archive_bucket, settings.archive_prefix)
        self.registry = ModelRegistry(S3ObjectStore(s3, settings.registry_bucket, settings.registry_prefix))
        self.publisher = GreengrassModelPublisher(
            greengrass=greengrass,
            s3=s3,
            artifact_bucket=settings.artifact_bucket,
            thing_group_arn=lambda line: settings.thing_group_arn_template.format(line=line),
        )

    def run(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Handle one scheduled event (EventBridge ``time``, or ``end``/``start`` ISO overrides), or a drift
        event from the stream processor (``source`` plantwatch.drift): the same job for that ``line`` only."""
        s = self.settings
        line = drift_line(event)
        end = _ms(event.get("end") or event.get("time")) or int(datetime.now(UTC).timestamp() * 1000)
        start = _ms(event.get("start")) or end - int(s.window_days * DAY_MS)
        columns = read_archive(self.archive, start_ms=start, end_ms=end, plant=s.plant)
        assets = of_line(reading_assets(columns, s.train.spec), line)
        if not assets:
            return {"status": "no-data", "start_ms": start, "end_ms": end, "readings": len(columns), "line": line}
        results = retrain(
            assets,
            train=s.train,
            registry=self.registry,
            evaluator=simulator_evaluator(s.simulation, s.train, s.periods),
            source={"kind": "s3-archive", "bucket": s.archive_bucket, "start_ms": start, "end_ms": end},
            publisher=self.publisher,
        )
        return {
            "status": "ok",
            "start_ms": start,
            "end_ms": end,
            "readings": len(columns),
            "line": line,
            "models": [msgspec.to_builtins(r) for r in results],
        }


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(stamp.timestamp() * 1000)


def build_job(settings: RetrainSettings | None = None) -> RetrainJob:
    """The job with real boto3 clients (AWS_ENDPOINT_URL is honoured)."""
    return RetrainJob(
        settings or RetrainSettings.from_env(), s3=boto3.client("s3"), greengrass=boto3.client("greengrassv2")
    )
