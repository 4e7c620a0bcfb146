"""Publishing a line's champion to its gateways: an S3 artifact, a Greengrass component version, a deployment per line.

Every model is a version of one component, ``com.plantwatch.Model``, the Gateway recipe's dependency: its
artifact is the verified ``model.pwf`` and its default configuration names the model and its SHA-256, which the
gateway checks before it scores with it. Each line's thing group gets the version carrying that line's model.
Versions are ``1.0.N`` (``edge build`` packs 0.x): N is one past the highest published, found by listing the
component's versions; a retry after a publish that created its version but failed later reuses that version
(found as the newest version, or as the one its line already runs: its recipe names the same model and SHA-256)
instead of creating another, and a line that already runs it gets no new deployment.

A deployment to a thing group replaces that group's whole component set, so the line's latest deployment is read
first and only the model component's version changes in it. A group whose latest deployment does not run the
Gateway component (a new group: ``plantwatch edge deploy`` has not been run on it) gets no deployment: a
model-only one would remove the gateway from every device in the group. Such lines are returned as ``waiting``.

A line whose latest deployment already carries the model is not deployed to again, so how that deployment went
on the line's gateways is read instead, once every deployment of the publish was made: the executions of the
deployment's IoT job that failed, timed out or were rejected (ListJobExecutionsForJob, one call per such
status), of things still in the group (ListThingsInThingGroup), each with the detailed status and cause the
nucleus reported (DescribeJobExecution). They come back as the deployment's ``failed`` rather than the line
counting as running the model; a check that could not be made (a denied or throttled read) as ``unchecked``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from plantwatch.edge.build import GATEWAY, MODEL, MODEL_FILE
from plantwatch.models.registry import RegistryEntry

log = logging.getLogger(__name__)

#: Published versions are 1.0.N; `plantwatch edge build` packs 0.x, which the Gateway recipe also accepts.
MAJOR_MINOR = "1.0"
#: Component states a published version can't be deployed from.
UNUSABLE_STATES = frozenset({"FAILED", "DEPRECATED"})
#: Attempts at a version number another publisher took meanwhile (ConflictException) before giving up.
VERSION_ATTEMPTS = 3
#: Statuses of a deployment's IoT job execution on a gateway where the deployment did not take.
FAILED_EXECUTIONS = ("FAILED", "REJECTED", "TIMED_OUT")


def _token(*parts: str) -> str:
    """An idempotency token (``[a-zA-Z0-9-]{1,64}``): retrying a publish creates nothing twice."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


class GreengrassModelPublisher:
    """Uploads the artifact, creates the component version, and deploys it to each line's thing group."""

    def __init__(
        self,
        *,
        greengrass: Any,
        iot: Any,
        s3: Any,
        artifact_bucket: str,
        thing_group_arn: Callable[[str], str],
        component: str = MODEL,
        artifact_prefix: str = "greengrass/artifacts",
    ) -> None:
        self.greengrass = greengrass
        self.iot = iot
        self.s3 = s3
        self.artifact_bucket = artifact_bucket
        self.thing_group_arn = thing_group_arn
        self.component = component
        self.artifact_prefix = artifact_prefix.strip("/")

    def recipe(self, entry: RegistryEntry, component: str, version: str, uri: str) -> dict[str, Any]:
        """The component recipe: the artifact, and the model's identity as default configuration."""
        return {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": component,
            "ComponentVersion": version,
            "ComponentDescription": f"plantwatch Isolation Forest {entry.name} (registry version {entry.version})",
            "ComponentPublisher": "plantwatch",
            "ComponentConfiguration": {
                "DefaultConfiguration": {
                    "modelName": entry.name,
                    "modelVersion": entry.version,
                    "sha256": entry.sha256,
                    "featureSpecHash": entry.feature_spec_hash,
                    "threshold": entry.threshold,
                }
            },
            "Manifests": [
                {
                    "Platform": {"os": "linux"},
                    "Lifecycle": {},
                    "Artifacts": [{"URI": uri, "Unarchive": "NONE", "Permission": {"Read": "ALL", "Execute": "NONE"}}],
                }
            ],
        }

    def publish(
        self, entry: RegistryEntry, artifact: bytes, lines: Sequence[str], *, known: str | None = None
    ) -> dict[str, Any]:
        """Make ``entry`` reach the gateways of ``lines``; returns the component version, the deployments (each
        ``unchanged`` where the line ran it already) and the lines ``waiting`` for their gateway deployment
        (nothing is deployed to those). ``known``: the component version it was published as before, if any."""
        if not lines:
            raise ValueError(f"model {entry.name} v{entry.version}: no line to deploy it to")
        component = self.component
        component_arn = self._component_arn(lines[0])
        found = {line: self._current(line) for line in lines}
        current = {line: c for line, c in found.items() if GATEWAY in c.components}
        waiting = [{"line": line, "targetArn": c.target} for line, c in found.items() if line not in current]
        if waiting:
            log.warning(
                "%s v%s is not deployed to %s: no deployment of %s there yet",
                entry.name,
                entry.version,
                ", ".join(w["targetArn"] for w in waiting),
                GATEWAY,
            )
        if not current:
            return {"component": component, "componentVersion": None, "deployments": [], "waiting": waiting}
        # content-addressed: a version number taken meanwhile by another publisher never overwrites its artifact
        key = f"{self.artifact_prefix}/{component}/{entry.sha256}/{MODEL_FILE}"
        self.s3.put_object(Bucket=self.artifact_bucket, Key=key, Body=artifact)
        deployed = [c.components.get(component, {}).get("componentVersion") for c in current.values()]
        for attempt in range(1, VERSION_ATTEMPTS + 1):
            version, published = self._version_for(component_arn, entry, [v for v in deployed if v], known)
            recipe = self.recipe(entry, component, version, f"s3://{self.artifact_bucket}/{key}")
            if published:
                break
            try:
                self.greengrass.create_component_version(
                    inlineRecipe=json.dumps(recipe, sort_keys=True).encode(),
                    clientToken=_token(component, version, entry.sha256),
                )
                break
            except self.greengrass.exceptions.ConflictException:
                if attempt == VERSION_ATTEMPTS:
                    raise
                log.warning("%s %s was taken meanwhile; taking the next version", component, version)
        deployments = [self._deploy(line, c, version) for line, c in current.items()]
        for deployment in deployments:  # after every deployment was made: a failed read holds none of them back
            if deployment["unchanged"]:
                deployment.update(self._outcome(current[deployment["line"]]))
        log.info("model published", extra={"component": component, "version": version, "lines": list(current)})
        return {
            "component": component,
            "componentVersion": version,
            "componentArn": f"{component_arn}:versions:{version}",
            "artifact": f"s3://{self.artifact_bucket}/{key}",
            "recipe": recipe,
            "deployments": deployments,
            "waiting": waiting,
        }

    def _component_arn(self, line: str) -> str:
        """The component's ARN, in the partition, Region and account of the lines' thing groups."""
        parts = self.thing_group_arn(line).split(":")
        if len(parts) < 6 or parts[0] != "arn":
            raise ValueError(f"not a thing group ARN: {self.thing_group_arn(line)!r}")
        partition, region, account = parts[1], parts[3], parts[4]
        return f"arn:{partition}:greengrass:{region}:{account}:components:{self.component}"

    def _version_for(
        self, component_arn: str, entry: RegistryEntry, deployed: Sequence[str], known: str | None = None
    ) -> tuple[str, bool]:
        """(version, already published). A model published before is found as the version it was published as
        (``known``), as the newest 1.0.N (a publish that failed after creating it) or as the one a line already
        runs (a publish that failed on a later line); else it gets 1.0.(N+1)."""
        patches = []
        try:
            for page in self.greengrass.get_paginator("list_component_versions").paginate(arn=component_arn):
                for listed in page.get("componentVersions", []):
                    major_minor, _, patch = str(listed["componentVersion"]).rpartition(".")
                    if major_minor == MAJOR_MINOR and patch.isdigit():
                        patches.append(int(patch))
        except self.greengrass.exceptions.ResourceNotFoundException:
            pass  # the component was never published (no `gdk component publish` of the 0.1.0 either)
        if not patches:
            return f"{MAJOR_MINOR}.1", False
        newest = f"{MAJOR_MINOR}.{max(patches)}"
        ours = {f"{MAJOR_MINOR}.{p}" for p in patches}
        candidates = [known, newest, *deployed]
        for candidate in dict.fromkeys(v for v in candidates if v in ours):
            if self._carries(f"{component_arn}:versions:{candidate}", entry):
                return candidate, True
        return f"{MAJOR_MINOR}.{max(patches) + 1}", False

    def _carries(self, version_arn: str, entry: RegistryEntry) -> bool:
        """Whether that component version's recipe names ``entry``'s model and SHA-256, and the service could make
        it deployable (a FAILED one, e.g. its artifact was unreadable when created, is never reused: every retry
        would deploy it and fail again)."""
        got = self.greengrass.get_component(arn=version_arn, recipeOutputFormat="JSON")
        configuration = json.loads(got["recipe"]).get("ComponentConfiguration", {}).get("DefaultConfiguration", {})
        if (configuration.get("modelName"), configuration.get("sha256")) != (entry.name, entry.sha256):
            return False
        state = self.greengrass.describe_component(arn=version_arn)["status"]["componentState"]
        if state in UNUSABLE_STATES:
            log.warning("%s is %s; publishing the model as a new version", version_arn, state)
            return False
        return True

    def _current(self, line: str) -> _LineDeployment:
        """The line's latest deployment: its components and policies (none yet: empty)."""
        target = self.thing_group_arn(line)
        latest = self.greengrass.list_deployments(targetArn=target, historyFilter="LATEST_ONLY").get("deployments", [])
        if not latest:
            return _LineDeployment(
                target=target, deployment_id=None, components={}, policies=None, iot_job=None, status=None
            )
        current = self.greengrass.get_deployment(deploymentId=latest[0]["deploymentId"])
        return _LineDeployment(
            target=target,
            deployment_id=latest[0]["deploymentId"],
            components=dict(current.get("components", {})),
            policies=current.get("deploymentPolicies"),
            iot_job=current.get("iotJobId"),
            status=current.get("deploymentStatus"),
        )

    def _deploy(self, line: str, current: _LineDeployment, version: str) -> dict[str, Any]:
        """Deploy the line's component set with the model at ``version`` (nothing if it runs that already)."""
        component, target = self.component, current.target
        running = current.components.get(component, {}).get("componentVersion")
        if current.deployment_id is not None and running == version:
            return {"line": line, "targetArn": target, "deploymentId": current.deployment_id, "unchanged": True}
        request: dict[str, Any] = {
            "targetArn": target,
            "deploymentName": f"{component} {version}",
            "components": {**current.components, component: {"componentVersion": version}},
            # with the deployment it replaces: a re-deployment of an earlier version (a rollback) within the
            # token's 8 hours is a new request, not a replay of the first deployment of that version
            "clientToken": _token(target, component, version, current.deployment_id or "-"),
        }
        request["deploymentPolicies"] = current.policies or {
            "failureHandlingPolicy": "ROLLBACK",
            "componentUpdatePolicy": {"action": "NOTIFY_COMPONENTS", "timeoutInSeconds": 60},
        }
        response = self.greengrass.create_deployment(**request)
        return {"line": line, "targetArn": target, "deploymentId": response["deploymentId"], "unchanged": False}

    def _outcome(self, current: _LineDeployment) -> dict[str, Any]:
        """How the line's latest deployment went on its gateways: ``failed`` (each gateway on which it failed,
        was rejected or timed out, with the nucleus's detailed status and cause), or ``unchecked`` and why."""
        if current.status == "CANCELED":  # gateways that had not received it never will: it carries nothing
            log.warning("%s, the latest deployment of %s, was canceled", current.deployment_id, current.target)
            return {
                "failed": [],
                "unchecked": "the deployment was canceled: gateways that had not received it don't run it",
            }
        if current.iot_job is None:
            return {"failed": [], "unchecked": "the deployment has no IoT job to read"}
        try:
            failed = self._failed_gateways(current.target, current.iot_job)
        # a read for the report (denied, throttled, an answer without a field) holds nothing back
        except Exception as exc:
            log.warning("could not read how %s went on %s", current.deployment_id, current.target, exc_info=True)
            return {"failed": [], "unchecked": f"{type(exc).__name__}: {exc}"}
        if failed:
            log.error("deployment %s failed on %d gateway(s) of %s", current.deployment_id, len(failed), current.target)
        return {"failed": failed}

    def _failed_gateways(self, target: str, job: str) -> list[dict[str, str]]:
        """The things still in the group ``target`` whose execution of the IoT job ``job`` failed, was rejected or
        timed out (a gateway that has left the group is not counted), in name order."""
        status_of: dict[str, str] = {}
        for status in FAILED_EXECUTIONS:
            pages = self.iot.get_paginator("list_job_executions_for_job").paginate(jobId=job, status=status)
            for page in pages:
                for execution in page.get("executionSummaries", []):
                    if execution.get("thingArn"):
                        status_of[str(execution["thingArn"]).rsplit("/", 1)[1]] = status
        if not status_of:
            return []
        group = target.rsplit("/", 1)[1]
        members = {
            str(thing)
            for page in self.iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=group)
            for thing in page.get("things", [])
        }
        failed = []
        for thing in sorted(status_of.keys() & members):
            try:
                execution = self.iot.describe_job_execution(jobId=job, thingName=thing).get("execution", {})
            except (ClientError, BotoCoreError) as exc:  # the failure stands; only its details are missing
                log.warning("could not read %s's execution of %s: %s", thing, job, exc)
                execution = {}
            details = execution.get("statusDetails", {}).get("detailsMap", {})
            failed.append(
                {
                    "device": thing,
                    "status": status_of[thing],
                    "detail": str(details.get("detailed-deployment-status", "")),
                    "reason": str(details.get("deployment-failure-cause", "")),
                }
            )
        return failed


@dataclass(frozen=True)
class _LineDeployment:
    target: str
    deployment_id: str | None
    components: dict[str, Any]
    policies: dict[str, Any] | None
    iot_job: str | None
    status: str | None
