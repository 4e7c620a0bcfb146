"""``plantwatch edge deploy``: a Greengrass deployment for a thing group through boto3 (GDK has no deploy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import msgspec

GATEWAY_COMPONENT: Final = "com.plantwatch.Gateway"
MODEL_COMPONENT: Final = "com.plantwatch.Model"


class DeploymentRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to deploy where: component versions for a thing group, and optional gateway configuration."""

    thing_group_arn: str
    gateway_version: str
    model_version: str | None = None
    deployment_name: str = "plantwatch-gateways"
    gateway_config: str | None = None  # path of a JSON file merged into the gateway component's configuration


def deployment_arguments(request: DeploymentRequest) -> dict[str, Any]:
    """The CreateDeployment arguments for ``request`` (validated: a thing group ARN, a JSON config)."""
    if ":thinggroup/" not in request.thing_group_arn:
        raise ValueError(
            f"target must be a thing group ARN (arn:aws:iot:...:thinggroup/NAME), got {request.thing_group_arn!r}"
        )
    gateway: dict[str, Any] = {"componentVersion": request.gateway_version}
    if request.gateway_config:
        document = json.loads(Path(request.gateway_config).read_text())
        if not isinstance(document, dict):
            raise ValueError("the gateway configuration must be a JSON object")
        gateway["configurationUpdate"] = {"merge": json.dumps(document)}
    components: dict[str, Any] = {GATEWAY_COMPONENT: gateway}
    if request.model_version:
        components[MODEL_COMPONENT] = {"componentVersion": request.model_version}
    return {
        "targetArn": request.thing_group_arn,
        "deploymentName": request.deployment_name,
        "components": components,
        "deploymentPolicies": {
            "failureHandlingPolicy": "ROLLBACK",
            "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
            "configurationValidationPolicy": {"timeoutInSeconds": 30},
        },
    }


def create_deployment(request: DeploymentRequest, *, region: str | None = None, client: Any = None) -> str:
    """Create the deployment; returns its id."""
    if client is None:
        import boto3

        client = boto3.client("greengrassv2", region_name=region)
    response = client.create_deployment(**deployment_arguments(request))
    return str(response["deploymentId"])
