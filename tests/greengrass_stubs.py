"""botocore Stubber expectations for the Greengrass calls of publishing a model (adapters/greengrass_publisher.py).

Greengrass has no local emulator: Stubber checks every request against the service model shipped with botocore
and answers with responses of the documented shapes.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.stub import ANY, Stubber

from plantwatch.edge.build import MODEL

ACCOUNT_ARN = "arn:aws:greengrass:eu-west-1:123456789012"
COMPONENT_ARN = f"{ACCOUNT_ARN}:components:{MODEL}"
#: A plant's line's thing group (Terraform: aws_iot_thing_group.line, named <project>-line-<plant>-<line>).
GROUP = "arn:aws:iot:eu-west-1:123456789012:thinggroup/plantwatch-line-{plant}-{line}"
#: What a line's thing group runs before the model rollout: the gateway and the model `edge build` packed.
DEPLOYED = {"com.plantwatch.Gateway": {"componentVersion": "0.1.0"}, MODEL: {"componentVersion": "0.1.0"}}


def model_recipe(version: str, model_name: str, sha256: str) -> bytes:
    """A published model component's recipe, as GetComponent returns it (JSON)."""
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": MODEL,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": {"modelName": model_name, "sha256": sha256}},
    }
    return json.dumps(recipe).encode()


def expect_versions(stubber: Stubber, versions: list[str], recipes: dict[str, bytes] | None = None) -> None:
    """ListComponentVersions answers ``versions`` (newest first, as the service lists them); then GetComponent is
    expected, in order, for each version in ``recipes`` (the newest 1.0.N, then any a line runs) with its recipe."""
    listed = [{"componentName": MODEL, "componentVersion": v, "arn": f"{COMPONENT_ARN}:versions:{v}"} for v in versions]
    stubber.add_response("list_component_versions", {"componentVersions": listed}, {"arn": COMPONENT_ARN})
    for version, recipe in (recipes or {}).items():
        stubber.add_response(
            "get_component",
            {"recipeOutputFormat": "JSON", "recipe": recipe},
            {"arn": f"{COMPONENT_ARN}:versions:{version}", "recipeOutputFormat": "JSON"},
        )


def expect_state(stubber: Stubber, version: str, state: str = "DEPLOYABLE") -> None:
    """DescribeComponent of ``version`` answers its state (asked of a version whose recipe carries the model)."""
    stubber.add_response(
        "describe_component",
        {"arn": f"{COMPONENT_ARN}:versions:{version}", "status": {"componentState": state}},
        {"arn": f"{COMPONENT_ARN}:versions:{version}"},
    )


def expect_create(stubber: Stubber, version: str) -> None:
    """CreateComponentVersion of ``version`` from an inline recipe, with an idempotency token."""
    stubber.add_response(
        "create_component_version",
        {
            "arn": f"{COMPONENT_ARN}:versions:{version}",
            "componentName": MODEL,
            "componentVersion": version,
            "creationTimestamp": "2026-11-27T00:00:00Z",
            "status": {"componentState": "REQUESTED"},
        },
        {"inlineRecipe": ANY, "clientToken": ANY},
    )


def expect_current(
    stubber: Stubber,
    line: str,
    model_version: str = "0.1.0",
    plant: str = "plant-1",
    components: dict[str, Any] | None = None,
    status: str = "ACTIVE",
) -> dict[str, Any]:
    """The plant's line's latest deployment is read: the gateway and the model at ``model_version`` (or
    ``components``); its components."""
    target = GROUP.format(plant=plant, line=line)
    if components is None:
        components = {**DEPLOYED, MODEL: {"componentVersion": model_version}}
    stubber.add_response(
        "list_deployments",
        {"deployments": [{"targetArn": target, "deploymentId": f"dep-{line}-0", "isLatestForTarget": True}]},
        {"targetArn": target, "historyFilter": "LATEST_ONLY"},
    )
    stubber.add_response(
        "get_deployment",
        {
            "targetArn": target,
            "deploymentId": f"dep-{line}-0",
            "deploymentStatus": status,
            "components": components,
            "iotJobId": f"job-{line}-0",
        },
        {"deploymentId": f"dep-{line}-0"},
    )
    return components


def expect_deploy(
    stubber: Stubber, line: str, version: str, components: dict[str, Any] = DEPLOYED, plant: str = "plant-1"
) -> None:
    """The plant's line's component set deployed again with only the model component's version changed."""
    target = GROUP.format(plant=plant, line=line)
    stubber.add_response(
        "create_deployment",
        {"deploymentId": f"dep-{line}-{version}"},
        {
            "targetArn": target,
            "deploymentName": f"{MODEL} {version}",
            "components": {**components, MODEL: {"componentVersion": version}},
            "deploymentPolicies": ANY,
            "clientToken": ANY,
        },
    )


def expect_no_deployment(stubber: Stubber, line: str, plant: str = "plant-1") -> None:
    """The plant's line's group has no deployment yet (a new group: no ``plantwatch edge deploy`` on it)."""
    target = GROUP.format(plant=plant, line=line)
    stubber.add_response("list_deployments", {"deployments": []}, {"targetArn": target, "historyFilter": "LATEST_ONLY"})


def stub_rollout(client: Any, plant: str, lines: list[str]) -> Stubber:
    """:func:`stub_rollouts` of the plant's ``lines``, in turn. Activated."""
    return stub_rollouts(client, [(plant, line) for line in lines])


def stub_rollouts(client: Any, plant_lines: list[tuple[str, str]]) -> Stubber:
    """Expect, per promoted model of a (plant, line) in turn: that plant's line group's deployment read, the next
    1.0.N of the model component (after the 0.1.0 `edge build` packed), then that group deployed to it. Activated."""
    stubber = Stubber(client)
    versions = ["0.1.0"]
    newest: dict[str, bytes] = {}
    for n, (plant, line) in enumerate(plant_lines, start=1):
        components = expect_current(stubber, line, plant=plant)
        expect_versions(stubber, list(reversed(versions)), newest)
        version = f"1.0.{n}"
        expect_create(stubber, version)
        expect_deploy(stubber, line, version, components, plant=plant)
        versions.append(version)
        newest = {version: model_recipe(version, f"{plant}.{line}", "0" * 64)}  # another line's model
    stubber.activate()
    return stubber


def expect_outcomes(
    iot: Stubber,
    line: str,
    failed: dict[str, str],
    *,
    members: list[str] | None = None,
    plant: str = "plant-1",
    job: str = "",
    paged: bool = False,
    detail: dict[str, str] | None = None,
) -> None:
    """How the line's latest deployment went, read from its IoT job (``job-<line>-0`` unless given): the job's
    executions with each failure status (``failed``: thing -> FAILED|REJECTED|TIMED_OUT; ``paged``: each status's
    first page is empty with a nextToken, as ListJobExecutionsForJob may answer); if any, the group's things
    (``members``, default every failed thing) and, for each failed thing still in the group, its execution's
    details as the nucleus reports them (``detail``: a thing's detailed status, default FAILED_ROLLBACK_COMPLETE)."""
    job = job or f"job-{line}-0"
    for status in ("FAILED", "REJECTED", "TIMED_OUT"):
        summaries = [
            {
                "thingArn": f"arn:aws:iot:eu-west-1:123456789012:thing/{thing}",
                "jobExecutionSummary": {"status": status, "executionNumber": 1},
            }
            for thing, got in failed.items()
            if got == status
        ]
        if paged:
            iot.add_response(
                "list_job_executions_for_job",
                {"executionSummaries": [], "nextToken": "p2"},
                {"jobId": job, "status": status},
            )
            iot.add_response(
                "list_job_executions_for_job",
                {"executionSummaries": summaries},
                {"jobId": job, "status": status, "nextToken": "p2"},
            )
        else:
            iot.add_response(
                "list_job_executions_for_job", {"executionSummaries": summaries}, {"jobId": job, "status": status}
            )
    if not failed:
        return
    members = list(failed) if members is None else members
    group = GROUP.format(plant=plant, line=line).rsplit("/", 1)[1]
    iot.add_response("list_things_in_thing_group", {"things": members}, {"thingGroupName": group})
    for thing in sorted(set(failed) & set(members)):
        details = {
            "detailed-deployment-status": (detail or {}).get(thing, "FAILED_ROLLBACK_COMPLETE"),
            "deployment-failure-cause": f"{MODEL}: model sha256 does not match on {thing}",
        }
        iot.add_response(
            "describe_job_execution",
            {"execution": {"jobId": job, "status": failed[thing], "statusDetails": {"detailsMap": details}}},
            {"jobId": job, "thingName": thing},
        )
