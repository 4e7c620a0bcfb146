"""Composition root of the retraining job on AWS: S3 archive in, S3 registry, Greengrass out (boto3).

A run covers one plant (a drift event, or an event naming a ``plant``) or every configured plant in turn
(the schedule). Whatever a run could not retrain is never dropped quietly: a plant (or line) whose window
holds no archived readings, a line that has no thing group to deploy to, and a line whose group runs no gateway
yet (its champion waits for it), are logged at error level and
sent to the failure queue (``PLANTWATCH_FAILURE_QUEUE_URL``, the function's dead-letter queue, whose depth
alarm pages) as a replayable event, like an invocation Lambda gave up on; without a queue the run raises. So is
a plant whose retraining raised (an unreadable archive object, a Greengrass error): the other plants go on, and
the invocation returns ``failed`` rather than raising, so Lambda does not retry (and re-run) every plant.
"""

from __future__ import annotations

import json
import logging
import os
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import boto3
import msgspec

from plantwatch.adapters.archive_reader import LINE_READ_BUDGET, keys_by_line, read_archive
from plantwatch.adapters.greengrass_publisher import GreengrassModelPublisher
from plantwatch.adapters.object_store import S3ObjectStore, s3_client_config
from plantwatch.contract.reading import IDENT_PATTERN
from plantwatch.domain.simulator import DAY_MS, SimulationConfig
from plantwatch.edge.build import GATEWAY, MODEL
from plantwatch.models.datasets import reading_assets
from plantwatch.models.pipeline import Periods
from plantwatch.models.registry import ModelRegistry
from plantwatch.models.trainer import TrainConfig
from plantwatch.services.retraining import (
    Evaluator,
    GroupResult,
    event_target,
    of_line,
    retrain,
    simulator_evaluator,
)

log = logging.getLogger(__name__)

#: ``ErrorCode`` of a failure-queue message: the window held no archived readings of the plant (or line).
NO_DATA = "NoArchivedData"
#: ``ErrorCode`` of a failure-queue message: readings of a line that has no thing group; nothing of it was trained.
NO_THING_GROUP = "LineWithoutThingGroup"
#: ``ErrorCode`` of a failure-queue message: the line's thing group runs no gateway yet; its model waits for it.
NO_GATEWAY = "LineWithoutGateway"
#: ``ErrorCode`` of a failure-queue message: the line's deployment of its champion failed on some of its gateways.
DEPLOYMENT_FAILED = "ModelDeploymentFailed"
#: The fields a thing group ARN template names: a line's group is its plant's, so two plants' line-1 never share one.
TEMPLATE_FIELDS = frozenset({"plant", "line"})
#: ``ErrorCode`` of a failure-queue message: the labelled evaluation set has no fault episodes of a line's assets.
NO_LABELLED_SET = "NoLabelledSet"
#: ``ErrorCode`` of a failure-queue message: archive objects of the window could not be read and were left out.
UNREADABLE = "UnreadableArchiveObject"
#: ``ErrorCode`` of a failure-queue message: retraining the plant (or line) raised; the others went on.
RETRAIN_ERROR = "RetrainError"
#: ``source`` of the event a scheduled run sends this function for each plant and line (see ``fan_out``).
FAN_OUT_SOURCE = "plantwatch.retrain.line"
#: ``source`` of the replayable event a failure-queue message carries (the job accepts it like any event).
REPLAY_SOURCE = "plantwatch.retrain"

Name = Annotated[str, msgspec.Meta(pattern=IDENT_PATTERN)]


class RetrainIncompleteError(RuntimeError):
    """Some plant or line could not be retrained and there is no failure queue to report it to."""


class RetrainSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration of the job, from ``PLANTWATCH_*`` environment variables."""

    archive_bucket: str
    archive_prefix: str = ""
    registry_bucket: str
    registry_prefix: str = "registry"
    artifact_bucket: str
    #: ARN of a plant's line's thing group, with ``{plant}`` and ``{line}`` in it, e.g.
    #: arn:aws:iot:eu-west-1:123:thinggroup/plantwatch-line-{plant}-{line}
    thing_group_arn_template: str
    #: lines every plant in ``plants`` has a thing group for (Terraform: var.production_lines; a group per plant
    #: and line); readings of any other line, or of a plant not in ``plants``, are refused before training
    lines: Annotated[list[Name], msgspec.Meta(min_length=1)]
    #: plants a scheduled run retrains, in turn (Terraform: var.plants); an event may name any one plant, but
    #: only these have thing groups
    plants: Annotated[list[Name], msgspec.Meta(min_length=1)]
    #: SQS queue told of what a run could not retrain (Terraform: the retrain failure queue); empty: the run raises
    failure_queue_url: str = ""
    window_days: float = 7.0
    #: readings one line's read keeps at most; a busier line-week is sampled in whole blocks (read_archive)
    max_readings_per_line: Annotated[int, msgspec.Meta(ge=1)] = LINE_READ_BUDGET
    train: TrainConfig = msgspec.field(default_factory=TrainConfig)
    simulation: SimulationConfig = msgspec.field(default_factory=SimulationConfig)
    periods: Periods = msgspec.field(default_factory=Periods)

    def __post_init__(self) -> None:
        fields = {name for _, name, _, _ in string.Formatter().parse(self.thing_group_arn_template) if name is not None}
        if fields != TEMPLATE_FIELDS:
            # without {plant}, every plant's line-1 would be one group: a plant's model would reach another's gateways
            raise ValueError(
                f"thing_group_arn_template must name {{plant}} and {{line}} and nothing else, "
                f"got {self.thing_group_arn_template!r}"
            )
        if self.train.scope != "line":
            # a line's group runs one com.plantwatch.Model: models of several asset classes would replace each
            # other there on every run
            raise ValueError(f"train.scope must be 'line' (a gateway runs one model), got {self.train.scope!r}")

    def lines_of(self, plant: str) -> list[str]:
        """The plant's lines that have a thing group (none for a plant outside ``plants``)."""
        return sorted(self.lines) if plant in self.plants else []

    def thing_group_arn(self, plant: str, line: str) -> str:
        """The deployment target of the plant's line."""
        return self.thing_group_arn_template.format(plant=plant, line=line)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RetrainSettings:
        """Read ``PLANTWATCH_ARCHIVE_BUCKET`` etc.; ``PLANTWATCH_TRAIN``/``_SIMULATION``/``_PERIODS`` hold JSON,
        ``PLANTWATCH_LINES``/``_PLANTS`` comma-separated names.
        Raises ValueError naming a bad or missing one."""
        # each variable is read by its literal name, so tests/infra can check them against Terraform
        given = {
            "archive_bucket": env.get("PLANTWATCH_ARCHIVE_BUCKET"),
            "archive_prefix": env.get("PLANTWATCH_ARCHIVE_PREFIX"),
            "registry_bucket": env.get("PLANTWATCH_REGISTRY_BUCKET"),
            "registry_prefix": env.get("PLANTWATCH_REGISTRY_PREFIX"),
            "artifact_bucket": env.get("PLANTWATCH_ARTIFACT_BUCKET"),
            "thing_group_arn_template": env.get("PLANTWATCH_THING_GROUP_ARN_TEMPLATE"),
            "lines": env.get("PLANTWATCH_LINES"),
            "plants": env.get("PLANTWATCH_PLANTS"),
            "failure_queue_url": env.get("PLANTWATCH_FAILURE_QUEUE_URL"),
            "window_days": env.get("PLANTWATCH_WINDOW_DAYS"),
            "max_readings_per_line": env.get("PLANTWATCH_MAX_READINGS_PER_LINE"),
            "train": env.get("PLANTWATCH_TRAIN"),
            "simulation": env.get("PLANTWATCH_SIMULATION"),
            "periods": env.get("PLANTWATCH_PERIODS"),
        }
        raw: dict[str, Any] = {}
        for field, value in given.items():
            if value is None:
                continue
            if field in ("train", "simulation", "periods"):
                raw[field] = msgspec.json.decode(value)
            elif field in ("lines", "plants"):
                raw[field] = [part.strip() for part in value.split(",") if part.strip()]
            else:
                raw[field] = value
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"bad retraining configuration: {exc} (see docs/models.md)") from exc


class RetrainJob:
    """Reads the archive window ending at the event's time, retrains each plant's lines, publishes what is
    promoted, and reports every plant or line it could not retrain."""

    def __init__(
        self,
        settings: RetrainSettings,
        *,
        s3: Any,
        greengrass: Any,
        iot: Any,
        sqs: Any = None,
        fan_out: tuple[Any, str] | None = None,
    ) -> None:
        """``fan_out``: (Lambda client, this function's name): a scheduled run then invokes the function once per
        plant and line (asynchronously) instead of retraining them all itself, so each line's week gets its own
        15 minutes and memory. Without it (tests, a container task) the run retrains every line in turn."""
        if (sqs is None) != (not settings.failure_queue_url):
            raise ValueError("an SQS client goes with PLANTWATCH_FAILURE_QUEUE_URL, and only with it")
        if fan_out is not None and sqs is None:
            # a run that raised after invoking the lines would be retried by Lambda and invoke them all again
            raise ValueError("fanning out one invocation per line needs PLANTWATCH_FAILURE_QUEUE_URL")
        self.settings = settings
        self.sqs = sqs
        self.fan_out = fan_out
        self._evaluation: Evaluator | None = None
        self.archive = S3ObjectStore(s3, settings.archive_bucket, settings.archive_prefix)
        self.registry = ModelRegistry(S3ObjectStore(s3, settings.registry_bucket, settings.registry_prefix))
        self.s3 = s3
        self.greengrass = greengrass
        self.iot = iot  # a line's deployment outcome: its IoT job's executions

    def publisher(self, plant: str) -> GreengrassModelPublisher:
        """Publishes the plant's models to its own lines' thing groups (never another plant's line of that name)."""
        return GreengrassModelPublisher(
            greengrass=self.greengrass,
            iot=self.iot,
            s3=self.s3,
            artifact_bucket=self.settings.artifact_bucket,
            thing_group_arn=lambda line: self.settings.thing_group_arn(plant, line),
        )

    def run(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Handle one scheduled event (EventBridge ``time``, or ``end``/``start`` ISO overrides): every configured
        plant in turn; or an event naming a ``plant`` (and ``line``), e.g. a drift event from the stream
        processor (``source`` plantwatch.drift): that plant's line only.

        ``status`` is ``ok`` when every plant (line) was retrained, else ``failed`` with the ``problems``, each
        logged at error level and sent to the failure queue; without a queue, RetrainIncompleteError is raised.
        """
        s = self.settings
        target = event_target(event)
        end = _ms(event.get("end") or event.get("time")) or int(datetime.now(UTC).timestamp() * 1000)
        start = _ms(event.get("start")) or end - int(s.window_days * DAY_MS)
        plants = [target.plant] if target is not None else list(s.plants)
        line = target.line if target is not None else None
        problems: list[dict[str, Any]] = []
        if target is None and self.fan_out is not None:
            return self._fan_out(start, end, problems)
        runs = []
        for plant in plants:
            try:
                runs.append(self._run_plant(plant, line, start, end, problems))
            except Exception as exc:  # one plant's failure must neither skip the others nor re-run them all
                log.exception("retraining plant %s failed", plant)
                where = f"plant {plant!r}" + ("" if line is None else f" line {line!r}")
                message = f"{RETRAIN_ERROR}: retraining {where} failed: {type(exc).__name__}: {exc}"
                problems.append(self._report(RETRAIN_ERROR, message, plant, line, start, end))
                runs.append({"plant": plant, "line": line, "status": "error", "models": []})
        return self._finish("ok", start, end, problems, runs=runs)

    def _finish(self, ok: str, start: int, end: int, problems: list[dict[str, Any]], **found: Any) -> dict[str, Any]:
        """The run's result (``ok``, or failed with its problems); without a failure queue, problems raise."""
        if problems and self.sqs is None:
            raise RetrainIncompleteError("; ".join(p["message"] for p in problems))
        return {"status": "failed" if problems else ok, "start_ms": start, "end_ms": end, **found, "problems": problems}

    def _fan_out(self, start: int, end: int, problems: list[dict[str, Any]]) -> dict[str, Any]:
        """Invoke this function once per configured plant and line, for the same window (InvocationType Event:
        Lambda queues each one and retries it, and the function's dead-letter queue gets what still fails). A line
        archived on the window's last day that has no thing group is reported here, as a plant's run would."""
        assert self.fan_out is not None
        client, function = self.fan_out
        s = self.settings
        invoked = []
        for plant in s.plants:
            try:
                last_day = list(keys_by_line(self.archive, start_ms=max(start, end - DAY_MS), end_ms=end, plant=plant))
            except Exception:  # the per-line runs read the archive anyway, and report what they can't read
                log.exception("listing plant %s's archived lines failed", plant)
                last_day = []
            for bad in sorted(set(last_day) - set(s.lines)):
                message = _without_thing_group(plant, bad, s.lines_of(plant))
                problems.append(self._report(NO_THING_GROUP, message, plant, bad, start, end))
            for line in s.lines:
                event = {"source": FAN_OUT_SOURCE, "plant": plant, "line": line, "start": _iso(start), "end": _iso(end)}
                try:
                    answer = client.invoke(
                        FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode()
                    )
                    if answer.get("StatusCode") != 202:
                        raise RuntimeError(f"status {answer.get('StatusCode')}, not 202 Accepted")
                    invoked.append({"plant": plant, "line": line})
                except Exception as exc:
                    log.exception("invoking %s for plant %s line %s failed", function, plant, line)
                    message = (
                        f"{RETRAIN_ERROR}: retraining plant {plant!r} line {line!r} was not started: invoking "
                        f"{function} failed: {type(exc).__name__}: {exc}"
                    )
                    problems.append(self._report(RETRAIN_ERROR, message, plant, line, start, end))
        return self._finish("fanned-out", start, end, problems, invoked=invoked)

    def _run_plant(
        self, plant: str, line: str | None, start: int, end: int, problems: list[dict[str, Any]]
    ) -> dict[str, Any]:
        s = self.settings
        where = f"plant {plant!r}" + ("" if line is None else f" line {line!r}")
        lines = None if line is None else [line]  # a line's run lists only that line's keys, once
        archived = keys_by_line(self.archive, start_ms=start, end_ms=end, plant=plant, lines=lines)
        grouped = s.lines_of(plant)
        refused = [a for a in archived if a not in grouped]
        for bad in refused:
            message = _without_thing_group(plant, bad, grouped)
            problems.append(self._report(NO_THING_GROUP, message, plant, bad, start, end))
        done: dict[str, Any] = {"plant": plant, "line": line, "readings": 0, "models": []}
        results: list[GroupResult] = []
        unreadable: list[tuple[str, str]] = []
        deployable = [a for a in archived if a in grouped]
        for each in deployable:  # one line at a time: a week of a line is millions of readings
            try:
                results += self._run_line(plant, each, archived[each], start, end, done, unreadable)
            except Exception as exc:  # one line's failure must not skip the plant's other lines
                log.exception("retraining plant %s line %s failed", plant, each)
                message = (
                    f"{RETRAIN_ERROR}: retraining plant {plant!r} line {each!r} failed: {type(exc).__name__}: {exc}"
                )
                problems.append(self._report(RETRAIN_ERROR, message, plant, each, start, end))
                done.setdefault("error_lines", []).append(each)
        if unreadable:
            keys = ", ".join(key for key, _ in unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
            message = (
                f"{UNREADABLE}: {len(unreadable)} archive object(s) of {where} from {_iso(start)} to {_iso(end)} "
                f"could not be read and were left out of training ({unreadable[0][1]}): {keys}. Verify the archive "
                "(plantwatch archive verify) and restore them from their locked versions."
            )
            problems.append(self._report(UNREADABLE, message, plant, line, start, end))
            done["unreadable_objects"] = len(unreadable)
        if not results and not refused and not done.get("error_lines"):
            message = (
                f"{NO_DATA}: no archived readings of {where} from {_iso(start)} to {_iso(end)} "
                f"({done['readings']} readings) under s3://{s.archive_bucket}/{s.archive_prefix}: nothing retrained. "
                "Are its gateways sending, and is the plant named as in their configuration?"
            )
            problems.append(self._report(NO_DATA, message, plant, line, start, end))
            return {**done, "status": "no-data"}
        done["models"] = [msgspec.to_builtins(r) for r in results if r.trained]
        unjudged = sorted({(each, r.name, r.reason) for r in results if not r.trained for each in r.lines})
        for unjudged_line, model, reason in unjudged:
            message = (
                f"{NO_LABELLED_SET}: {model} of plant {plant!r} line {unjudged_line!r} was {reason}. The evaluation "
                "set is the simulated plant of PLANTWATCH_SIMULATION: name this line's assets as it does, or "
                "widen it (lines, assets_per_line)."
            )
            problems.append(self._report(NO_LABELLED_SET, message, plant, unjudged_line, start, end))
        if unjudged:
            done["unjudged_lines"] = sorted({u[0] for u in unjudged})
        waiting = {w["line"]: (r.name, w["targetArn"]) for r in results for w in (r.published or {}).get("waiting", [])}
        for waiting_line, (model, group) in sorted(waiting.items()):  # one report (and replay) per line
            message = _without_gateway(plant, waiting_line, group, model)
            problems.append(self._report(NO_GATEWAY, message, plant, waiting_line, start, end))
        if waiting:
            done["waiting_lines"] = sorted(waiting)
        failed = {
            d["line"]: (r.name, str((r.published or {}).get("componentVersion")), d)
            for r in results
            for d in (r.published or {}).get("deployments", [])
            if d.get("failed")
        }
        for failed_line, (model, version, deployment) in sorted(failed.items()):
            message = _failed_on_gateways(plant, failed_line, model, version, deployment)
            problems.append(self._report(DEPLOYMENT_FAILED, message, plant, failed_line, start, end))
        if failed:
            done["failed_lines"] = sorted(failed)
        unchecked = {
            d["line"]: d["unchecked"]
            for r in results
            for d in (r.published or {}).get("deployments", [])
            if d.get("unchecked")
        }
        if unchecked:  # a read that failed (denied, throttled): the next run reads again; nothing was held back
            done["unchecked_lines"] = unchecked
        done["refused_lines"] = refused
        errors = done.get("error_lines")
        if errors and not results:
            return {**done, "status": "error"}
        partial = refused or unreadable or unjudged or waiting or failed or errors
        return {**done, "status": "ok" if not partial else "partial" if results else "refused"}

    def _run_line(
        self,
        plant: str,
        line: str,
        keys: list[str],
        start: int,
        end: int,
        done: dict[str, Any],
        unreadable: list[tuple[str, str]],
    ) -> list[GroupResult]:
        """Read one line's window (kept to the budget), and retrain and publish its model."""
        s = self.settings
        columns = read_archive(
            self.archive,
            start_ms=start,
            end_ms=end,
            keys=keys,
            unreadable=unreadable,
            max_readings=s.max_readings_per_line,
        )
        source: dict[str, Any] = {
            "kind": "s3-archive",
            "bucket": s.archive_bucket,
            "start_ms": start,
            "end_ms": end,
            "readings": len(columns),
        }
        if columns.sample is not None:
            source["sample"] = msgspec.to_builtins(columns.sample)
            done.setdefault("sampled_lines", []).append(line)
        done["readings"] += len(columns) if columns.sample is None else columns.sample.read
        assets = of_line(reading_assets(columns, s.train.spec), line)
        del columns
        if not assets:
            return []
        return retrain(
            assets,
            train=s.train,
            registry=self.registry,
            evaluator=self._evaluator().for_plant(plant),
            source=source,
            publisher=self.publisher(plant),
        )

    def _evaluator(self) -> Evaluator:
        """The labelled evaluation set, built once per job and only when some plant has data to train on."""
        if self._evaluation is None:
            s = self.settings
            self._evaluation = simulator_evaluator(s.simulation, s.train, s.periods)
        return self._evaluation

    def _report(self, code: str, message: str, plant: str, line: str | None, start: int, end: int) -> dict[str, Any]:
        """Log a plant or line the run could not retrain and queue a replayable event for it."""
        log.error(message, extra={"error_code": code, "plant": plant, "line": line})
        replay: dict[str, Any] = {"source": REPLAY_SOURCE, "plant": plant, "start": _iso(start), "end": _iso(end)}
        if line is not None:
            replay["line"] = line
        if self.sqs is not None:
            # the shape of a message Lambda puts on a dead-letter queue: the event as body, the error as attributes
            self.sqs.send_message(
                QueueUrl=self.settings.failure_queue_url,
                MessageBody=json.dumps(replay, sort_keys=True),
                MessageAttributes={
                    "ErrorCode": {"DataType": "String", "StringValue": code},
                    "ErrorMessage": {"DataType": "String", "StringValue": message[:1000]},
                },
            )
        return {"code": code, "plant": plant, "line": line, "message": message, "replay": replay}


def _without_thing_group(plant: str, line: str, grouped: Sequence[str]) -> str:
    return (
        f"{NO_THING_GROUP}: plant {plant!r} has readings of line {line!r}, which has no thing group "
        f"(this plant's lines with one: {', '.join(grouped) or 'none, the plant is not in plants'}): its "
        "models were not trained, registered or deployed. Add the plant to plants and the line to "
        "production_lines, or name them on the gateways as they are named there."
    )


def _without_gateway(plant: str, line: str, group: str, model: str) -> str:
    return (
        f"{NO_GATEWAY}: the thing group of plant {plant!r} line {line!r} ({group}) runs no {GATEWAY} deployment "
        f"yet, so {model}'s champion was not deployed there: a model-only deployment would remove the gateway from "
        "the group's devices. Deploy the gateway to the group (plantwatch edge deploy --thing-group-arn ...), then "
        "replay this event."
    )


#: What a gateway's detailed deployment status (the nucleus's ``detailed-deployment-status``) says of its state.
GATEWAY_STATE = {
    "FAILED_ROLLBACK_COMPLETE": "it went back to its previous model",
    "FAILED_NO_STATE_CHANGE": "nothing changed on it: it runs its previous model",
    "FAILED_ROLLBACK_NOT_REQUESTED": "it did not roll back and MAY NOT BE SCORING: check it now",
    "FAILED_UNABLE_TO_ROLLBACK": "its rollback failed and it MAY NOT BE SCORING: check it now",
}


def _failed_on_gateways(plant: str, line: str, model: str, version: str, deployment: Mapping[str, Any]) -> str:
    gateways = "; ".join(
        f"{f['device']} {f['status']} ({f['detail'] or 'no detailed status'}: "
        f"{GATEWAY_STATE.get(f['detail'], 'its state is not known')}): {f['reason'] or 'no cause given'}"
        for f in deployment["failed"]
    )
    return (
        f"{DEPLOYMENT_FAILED}: deployment {deployment['deploymentId']} of {model}'s champion ({MODEL} {version}) "
        f"to plant {plant!r} line {line!r} ({deployment['targetArn']}) failed on {len(deployment['failed'])} "
        f"gateway(s): {gateways}. Deploying the same version again would fail again: fix the cause, then deploy "
        "it (plantwatch edge deploy ... --model-version), or roll back (plantwatch registry promote)."
    )


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(stamp.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def build_job(settings: RetrainSettings | None = None) -> RetrainJob:
    """The job with real boto3 clients (AWS_ENDPOINT_URL is honoured); SQS only with a failure queue."""
    settings = settings or RetrainSettings.from_env()
    sqs = boto3.client("sqs") if settings.failure_queue_url else None
    s3 = boto3.client("s3", config=s3_client_config())
    clients = {"s3": s3, "greengrass": boto3.client("greengrassv2"), "iot": boto3.client("iot")}
    # In Lambda (which names the function in AWS_LAMBDA_FUNCTION_NAME) a scheduled run fans out one line per invocation
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    fan_out = (boto3.client("lambda"), function) if function else None
    return RetrainJob(settings, **clients, sqs=sqs, fan_out=fan_out)
