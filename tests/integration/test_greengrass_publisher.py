"""Publishing a model to the gateways: versions of com.plantwatch.Model, checked with botocore's Stubber (the real
request shapes) for Greengrass and S3. What the job does end to end is in test_retrain_job.py; here, the two
ways a version number can already be taken: by this very model (a retried publish) or by another publisher."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from plantwatch.adapters.greengrass_publisher import GreengrassModelPublisher
from plantwatch.edge.build import GATEWAY, MODEL
from plantwatch.models.registry import RegistryEntry
from tests.greengrass_stubs import (
    GROUP,
    expect_create,
    expect_current,
    expect_deploy,
    expect_no_deployment,
    expect_outcomes,
    expect_state,
    expect_versions,
    model_recipe,
)

ENTRY = RegistryEntry(
    name="plant-1.line-1",
    version="7",
    status="champion",
    parent="6",
    sha256="ab" * 32,
    feature_spec_hash="cd" * 32,
    threshold=0.61,
)
ARTIFACT = b"PK model bytes"
KEY = f"greengrass/artifacts/{MODEL}/{ENTRY.sha256}/model.pwf"


@pytest.fixture
def clients() -> tuple[object, object]:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1")
    return session.client("greengrassv2"), session.client("s3")


def _iot() -> Any:
    """An IoT client (for a line's deployment outcome: its job's executions), to be stubbed."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1")
    return session.client("iot")


def _publisher(greengrass: object, s3: object, iot: object = None) -> GreengrassModelPublisher:
    if iot is None:  # a test that expects no IoT call: any call fails the Stubber (and shows as unchecked)
        iot = _iot()
        Stubber(iot).activate()
    return GreengrassModelPublisher(
        greengrass=greengrass,
        iot=iot,
        s3=s3,
        artifact_bucket="artifacts",
        thing_group_arn=lambda line: GROUP.format(plant="plant-1", line=line),
    )


def _publish(
    greengrass: object, s3: object, stubber: Stubber, uploads: Stubber, iot: Stubber | None = None
) -> dict[str, Any]:
    """Publish ENTRY to line-1 with the expected calls (IoT's: ``iot``, else none), and check every expected call
    was made."""
    stubber.activate()
    if iot is not None:
        iot.activate()
    published = _publisher(greengrass, s3, None if iot is None else iot.client).publish(ENTRY, ARTIFACT, ["line-1"])
    stubber.assert_no_pending_responses()
    uploads.assert_no_pending_responses()
    if iot is not None:
        iot.assert_no_pending_responses()
    # a Stubber's refusal of an unexpected call is a botocore error too: it must not pass as an unchecked outcome
    assert [d["unchecked"] for d in published["deployments"] if "unchecked" in d] == []
    return published


def _expect_upload(s3: object) -> Stubber:
    stubber = Stubber(s3)
    stubber.add_response("put_object", {"ETag": '"1"'}, {"Bucket": "artifacts", "Key": KEY, "Body": ARTIFACT})
    stubber.activate()
    return stubber


def test_a_retried_publish_reuses_the_version_it_created_and_deploys_it(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber = Stubber(greengrass)
    # GIVEN an earlier attempt created 1.0.4 for this very model, then failed before deploying
    components = expect_current(stubber, "line-1")
    expect_versions(stubber, ["1.0.4", "1.0.3", "0.1.0"], {"1.0.4": model_recipe("1.0.4", ENTRY.name, ENTRY.sha256)})
    expect_state(stubber, "1.0.4")
    expect_deploy(stubber, "line-1", "1.0.4", components)  # no CreateComponentVersion: Stubber refuses any call
    # WHEN the publish is retried
    published = _publish(greengrass, s3, stubber, uploads)
    # THEN line-1 is deployed to 1.0.4, nothing is created twice
    assert published["componentVersion"] == "1.0.4"
    assert published["deployments"] == [
        {
            "line": "line-1",
            "targetArn": GROUP.format(plant="plant-1", line="line-1"),
            "deploymentId": "dep-line-1-1.0.4",
            "unchanged": False,
        }
    ]


@pytest.mark.parametrize(
    ("failed", "members", "paged", "reported"),
    [
        # no execution of the deployment failed (some may still be installing it, or not have received it)
        ({}, None, False, []),
        # two gateways failed it; a third failed it too, but has left the group since (replaced hardware)
        (
            {"gw-2": "FAILED", "gw-3": "TIMED_OUT", "gw-old": "REJECTED"},
            ["gw-1", "gw-2", "gw-3"],
            False,
            [("gw-2", "FAILED"), ("gw-3", "TIMED_OUT")],
        ),
        # the same, with every status's executions on a second page
        ({"gw-2": "FAILED"}, None, True, [("gw-2", "FAILED")]),
    ],
)
def test_a_retried_run_finds_the_version_its_line_already_runs_deploys_nothing_and_reads_how_it_went(
    clients: tuple[object, object],
    failed: dict[str, str],
    members: list[str] | None,
    paged: bool,
    reported: list[tuple[str, str]],
) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber, iot = Stubber(greengrass), Stubber(_iot())
    # GIVEN a run published this model as 1.0.5 and deployed line-1 to it, then published line-2's model as
    # 1.0.6 and failed; the run is retried
    expect_current(stubber, "line-1", model_version="1.0.5")
    recipes = {
        "1.0.6": model_recipe("1.0.6", "plant-1.line-2", "ef" * 32),
        "1.0.5": model_recipe("1.0.5", ENTRY.name, ENTRY.sha256),
    }
    expect_versions(stubber, ["1.0.6", "1.0.5", "0.1.0"], recipes)
    expect_state(stubber, "1.0.5")
    expect_outcomes(iot, "line-1", failed, members=members, paged=paged)
    # WHEN line-1's model is published again
    published = _publish(greengrass, s3, stubber, uploads, iot)
    # THEN it is 1.0.5 again, and line-1, which runs it, gets no new deployment (no needless gateway restart, and
    # one that failed would fail again); the gateways in the group that failed that deployment come back, with
    # the nucleus's detailed status and cause
    assert published["componentVersion"] == "1.0.5"
    [deployment] = published["deployments"]
    assert (deployment["deploymentId"], deployment["unchanged"]) == ("dep-line-1-0", True)
    assert "unchecked" not in deployment
    assert [(f["device"], f["status"]) for f in deployment["failed"]] == reported
    for f in deployment["failed"]:
        assert (f["detail"], f["reason"]) == (
            "FAILED_ROLLBACK_COMPLETE",
            f"{MODEL}: model sha256 does not match on {f['device']}",
        )


def _publish_to_both(greengrass: object, s3: object, stubbers: tuple[Stubber, Stubber, Stubber]) -> list[Any]:
    """Publish ENTRY to line-1 and line-2 with the expected Greengrass, IoT and S3 calls; its two deployments."""
    for stubber in stubbers:
        stubber.activate()
    published = _publisher(greengrass, s3, stubbers[1].client).publish(ENTRY, ARTIFACT, ["line-1", "line-2"])
    for stubber in stubbers:
        stubber.assert_no_pending_responses()
    return list(published["deployments"])


def test_a_canceled_deployment_and_a_failure_without_details_are_said_as_such(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber, iot = Stubber(greengrass), Stubber(_iot())
    # GIVEN line-1's latest deployment of ENTRY (1.0.5) was canceled, and line-2's failed on gw-9, whose execution
    # can't be described any more
    expect_current(stubber, "line-1", model_version="1.0.5", status="CANCELED")
    expect_current(stubber, "line-2", model_version="1.0.5")
    expect_versions(stubber, ["1.0.5", "0.1.0"], {"1.0.5": model_recipe("1.0.5", ENTRY.name, ENTRY.sha256)})
    expect_state(stubber, "1.0.5")
    for status in ("FAILED", "REJECTED", "TIMED_OUT"):
        found = [{"thingArn": "arn:aws:iot:eu-west-1:123456789012:thing/gw-9"}] if status == "REJECTED" else []
        iot.add_response(
            "list_job_executions_for_job", {"executionSummaries": found}, {"jobId": "job-line-2-0", "status": status}
        )
    group = GROUP.format(plant="plant-1", line="line-2").rsplit("/", 1)[1]
    iot.add_response("list_things_in_thing_group", {"things": ["gw-9"]}, {"thingGroupName": group})
    iot.add_client_error("describe_job_execution", "ResourceNotFoundException", http_status_code=404)
    # WHEN ENTRY is published to both lines
    one, two = _publish_to_both(greengrass, s3, (stubber, iot, uploads))
    # THEN line-1's outcome is not taken as running the model, and line-2's failure stands without its details
    assert (one["unchanged"], one["failed"]) == (True, [])
    assert "canceled" in one["unchecked"]
    assert two["failed"] == [{"device": "gw-9", "status": "REJECTED", "detail": "", "reason": ""}]
    assert "unchecked" not in two


def test_a_deployment_outcome_that_cant_be_read_holds_no_line_back(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber, iot = Stubber(greengrass), Stubber(_iot())
    # GIVEN line-1 runs ENTRY as 1.0.5 already and line-2 runs the baseline, and the job may not read IoT jobs
    expect_current(stubber, "line-1", model_version="1.0.5")
    line_2 = expect_current(stubber, "line-2")
    expect_versions(stubber, ["1.0.5", "0.1.0"], {"1.0.5": model_recipe("1.0.5", ENTRY.name, ENTRY.sha256)})
    expect_state(stubber, "1.0.5")
    expect_deploy(stubber, "line-2", "1.0.5", line_2)
    iot.add_client_error("list_job_executions_for_job", "AccessDeniedException", http_status_code=403)
    # WHEN ENTRY is published to both lines
    one, two = _publish_to_both(greengrass, s3, (stubber, iot, uploads))
    # THEN line-2 is deployed all the same, and line-1's outcome is reported as not checked, and why
    assert (one["line"], one["unchanged"], one["failed"]) == ("line-1", True, [])
    assert "AccessDeniedException" in one["unchecked"]
    assert (two["line"], two["unchanged"], two["deploymentId"]) == ("line-2", False, "dep-line-2-1.0.5")


def _expect_published_as_1_0_2(stubber: Stubber, *, running: str, newest: str) -> dict[str, object]:
    """line-1 runs ``running``; ENTRY was published as 1.0.2 and only 1.0.2's recipe is read (it is checked
    first, as the version ENTRY is known to be published as). Returns line-1's components."""
    components = expect_current(stubber, "line-1", model_version=running)
    expect_versions(stubber, [newest, "1.0.2", "0.1.0"], {"1.0.2": model_recipe("1.0.2", ENTRY.name, ENTRY.sha256)})
    expect_state(stubber, "1.0.2")
    return components


def test_a_champion_published_before_is_found_as_its_version_though_neither_newest_nor_running(
    clients: tuple[object, object],
) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber = Stubber(greengrass)
    # GIVEN this model was published as 1.0.2; other lines' models took 1.0.3-1.0.5 since; and a gateway upgrade
    # (`plantwatch edge deploy ... --model-version 0.1.0`) put line-1 back on the packed baseline
    components = _expect_published_as_1_0_2(stubber, running="0.1.0", newest="1.0.5")
    expect_deploy(stubber, "line-1", "1.0.2", components)  # no CreateComponentVersion: Stubber refuses any call
    stubber.activate()
    # WHEN the champion is published with the version it was published as
    published = _publisher(greengrass, s3).publish(ENTRY, ARTIFACT, ["line-1"], known="1.0.2")
    # THEN that version is checked first and deployed again; no duplicate 1.0.6 is created
    stubber.assert_no_pending_responses()
    uploads.assert_no_pending_responses()
    assert published["componentVersion"] == "1.0.2"
    assert [d["unchanged"] for d in published["deployments"]] == [False]


def test_a_rollback_to_a_version_deployed_before_is_a_new_deployment_request(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber = Stubber(greengrass)
    # GIVEN line-1 ran this model as 1.0.2, then 1.0.3 (dep-line-1-0), and the registry's champion is 1.0.2 again
    components = _expect_published_as_1_0_2(stubber, running="1.0.3", newest="1.0.3")
    target = GROUP.format(plant="plant-1", line="line-1")
    # THEN the deployment's idempotency token names the deployment it replaces: within the token's 8 hours,
    # Greengrass would answer a token of (group, component, version) alone with the first 1.0.2 deployment
    # and deploy nothing
    stubber.add_response(
        "create_deployment",
        {"deploymentId": "dep-line-1-rollback"},
        {
            "targetArn": target,
            "deploymentName": f"{MODEL} 1.0.2",
            "components": {**components, MODEL: {"componentVersion": "1.0.2"}},
            "deploymentPolicies": ANY,
            "clientToken": hashlib.sha256(f"{target}:{MODEL}:1.0.2:dep-line-1-0".encode()).hexdigest(),
        },
    )
    stubber.activate()
    published = _publisher(greengrass, s3).publish(ENTRY, ARTIFACT, ["line-1"], known="1.0.2")
    stubber.assert_no_pending_responses()
    uploads.assert_no_pending_responses()
    assert [(d["deploymentId"], d["unchanged"]) for d in published["deployments"]] == [("dep-line-1-rollback", False)]


def test_a_failed_version_of_the_same_model_is_not_reused(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber = Stubber(greengrass)
    # GIVEN an earlier attempt created 1.0.4 for this model, and the service marked it FAILED
    components = expect_current(stubber, "line-1")
    expect_versions(stubber, ["1.0.4", "0.1.0"], {"1.0.4": model_recipe("1.0.4", ENTRY.name, ENTRY.sha256)})
    expect_state(stubber, "1.0.4", "FAILED")
    expect_create(stubber, "1.0.5")
    expect_deploy(stubber, "line-1", "1.0.5", components)
    # WHEN the model is published again THEN it gets a new version, and line-1 that one
    published = _publish(greengrass, s3, stubber, uploads)
    assert published["componentVersion"] == "1.0.5"


def test_the_first_publish_of_a_component_that_was_never_published_is_1_0_1(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber = Stubber(greengrass)
    # GIVEN line-1 runs the gateway (its model as a dependency), and the model component was never published
    gateway_only = {GATEWAY: {"componentVersion": "0.1.0"}}
    expect_current(stubber, "line-1", components=gateway_only)
    stubber.add_client_error("list_component_versions", "ResourceNotFoundException", http_status_code=404)
    expect_create(stubber, "1.0.1")
    expect_deploy(stubber, "line-1", "1.0.1", components=gateway_only)
    published = _publish(greengrass, s3, stubber, uploads)
    assert published["componentVersion"] == "1.0.1"
    assert published["waiting"] == []


def test_a_group_that_runs_no_gateway_yet_gets_no_model_only_deployment(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    nothing_uploaded = Stubber(s3)  # any S3 call fails the test
    nothing_uploaded.activate()
    stubber = Stubber(greengrass)
    # GIVEN line-1's thing group is new: no deployment (no `plantwatch edge deploy` on it yet)
    expect_no_deployment(stubber, "line-1")
    # WHEN a model is published to it (a deployment of the model alone would, as each device's whole component
    # set, remove the gateway from devices already added to the group)
    published = _publish(greengrass, s3, stubber, nothing_uploaded)
    # THEN nothing is uploaded, created or deployed, and the line is returned as waiting for its gateway
    assert (published["componentVersion"], published["deployments"]) == (None, [])
    assert published["waiting"] == [{"line": "line-1", "targetArn": GROUP.format(plant="plant-1", line="line-1")}]


def test_a_model_of_two_lines_is_deployed_to_the_one_that_runs_the_gateway(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber = Stubber(greengrass)
    # GIVEN an asset-class model for line-1 and line-2, and only line-1's group running the gateway
    components = expect_current(stubber, "line-1")
    expect_no_deployment(stubber, "line-2")
    expect_versions(stubber, ["1.0.2", "0.1.0"], {"1.0.2": model_recipe("1.0.2", "plant-1.line-9", "ef" * 32)})
    expect_create(stubber, "1.0.3")
    expect_deploy(stubber, "line-1", "1.0.3", components)
    stubber.activate()
    # WHEN it is published
    published = _publisher(greengrass, s3).publish(ENTRY, ARTIFACT, ["line-1", "line-2"])
    # THEN line-1 gets it and line-2 waits
    stubber.assert_no_pending_responses()
    uploads.assert_no_pending_responses()
    assert [d["line"] for d in published["deployments"]] == ["line-1"]
    assert [w["line"] for w in published["waiting"]] == ["line-2"]


def test_a_version_taken_meanwhile_moves_to_the_next_one(clients: tuple[object, object]) -> None:
    greengrass, s3 = clients
    uploads = _expect_upload(s3)
    stubber = Stubber(greengrass)
    # GIVEN 1.0.3 is the latest when listed, and another publisher creates 1.0.4 before this one can
    components = expect_current(stubber, "line-1")
    expect_versions(stubber, ["1.0.3", "0.1.0"], {"1.0.3": model_recipe("1.0.3", "plant-1.line-2", "ef" * 32)})
    stubber.add_client_error("create_component_version", "ConflictException", http_status_code=409)
    expect_versions(stubber, ["1.0.4", "1.0.3", "0.1.0"], {"1.0.4": model_recipe("1.0.4", "plant-1.line-3", "01" * 32)})
    expect_create(stubber, "1.0.5")
    expect_deploy(stubber, "line-1", "1.0.5", components)
    # WHEN this model is published
    published = _publish(greengrass, s3, stubber, uploads)
    # THEN it becomes 1.0.5, its recipe names it and its content-addressed artifact, and line-1 gets it
    assert published["componentVersion"] == "1.0.5"
    recipe = published["recipe"]
    assert recipe["ComponentName"] == MODEL
    assert recipe["ComponentVersion"] == "1.0.5"
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["modelName"] == ENTRY.name
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["sha256"] == ENTRY.sha256
    assert [a["URI"] for a in recipe["Manifests"][0]["Artifacts"]] == [f"s3://artifacts/{KEY}"]
    assert json.loads(json.dumps(recipe)) == recipe


def test_the_gateway_recipe_accepts_every_version_the_publisher_creates() -> None:
    import yaml
    from packaging.specifiers import SpecifierSet

    from tests.conftest import REPO

    recipe = yaml.safe_load((REPO / "edge/components/com.plantwatch.Gateway/recipe.yaml").read_text())
    requirement = recipe["ComponentDependencies"][MODEL]["VersionRequirement"]
    accepted = SpecifierSet(",".join(requirement.split()))  # npm-style: space-separated comparators all hold
    assert all(accepted.contains(v) for v in ("0.1.0", "1.0.1", "1.0.99")), requirement
