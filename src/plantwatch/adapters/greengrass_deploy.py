"""``plantwatch edge deploy``: a Greengrass deployment for a thing group through boto3 (GDK has no deploy).

A deployment replaces the group's whole component set, so the group's latest deployment is read first: its other
components (e.g. ``aws.greengrass.DiskSpooler``) are kept, and so is its model version unless one is given, and
the gateway's configuration merge: a device that joins the group later gets the latest deployment's merge only,
so a new ``--gateway-config`` is merged over the one before rather than replacing it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import msgspec

GATEWAY_COMPONENT: Final = "com.plantwatch.Gateway"
MODEL_COMPONENT: Final = "com.plantwatch.Model"

log = logging.getLogger(__name__)


class DeploymentRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to deploy where: component versions for a thing group, and optional gateway configuration."""

    thing_group_arn: str
    gateway_version: str
    model_version: str | None = None
    deployment_name: str = "plantwatch-gateways"
    gateway_config: str | None = None  # path of a JSON file merged into the gateway component's configuration


def deployment_arguments(request: DeploymentRequest, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CreateDeployment arguments for ``request`` (validated: a thing group ARN, a JSON config), over the
    ``current`` components of the group's latest deployment (kept, but for the gateway; the model's version
    unless the request names one)."""
    _check_target(request.thing_group_arn)
    gateway: dict[str, Any] = {"componentVersion": request.gateway_version}
    before = dict((current or {}).get(GATEWAY_COMPONENT, {}).get("configurationUpdate", {}))
    if request.gateway_config:
        document = json.loads(Path(request.gateway_config).read_text())
        if not isinstance(document, dict):
            raise ValueError("the gateway configuration must be a JSON object")
        before["merge"] = json.dumps(_merged(json.loads(before.get("merge") or "{}"), document))
    reset = _alert_count_resets(json.loads(before.get("merge") or "{}"), before.get("reset") or [])
    if reset:
        before["reset"] = reset
    if before:
        gateway["configurationUpdate"] = before
    components: dict[str, Any] = {**(current or {}), GATEWAY_COMPONENT: gateway}
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


#: The gateway's alert counts: unset, they are the scoring model's tuned counts (never below 3 and 5).
ALERT_COUNT_PATHS: Final = ("/gateway/alerts/raise_after", "/gateway/alerts/clear_after")


def _alert_count_resets(merge: dict[str, Any], reset: list[str]) -> list[str]:
    """``reset`` with the alert counts the merge does not set. Recipes before 2026-11-29 had raise_after 3 and
    clear_after 5 as defaults, and a device keeps a key an old default put there through component upgrades
    (the nucleus only resets what a deployment names), where it would read as the operator's and stop the
    gateway following its model's counts. Reset runs before merge, so a count the merge sets stays."""
    alerts = merge.get("gateway", {}).get("alerts", {}) if isinstance(merge.get("gateway"), dict) else {}
    named = alerts if isinstance(alerts, dict) else {}
    ours = [path for path in ALERT_COUNT_PATHS if path.rsplit("/", 1)[1] not in named]
    return [*[r for r in reset if r not in ALERT_COUNT_PATHS], *ours]


def _check_target(arn: str) -> None:
    if ":thinggroup/" not in arn:
        raise ValueError(f"target must be a thing group ARN (arn:aws:iot:...:thinggroup/NAME), got {arn!r}")


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` merged into ``base`` the way Greengrass merges a configuration: objects key by key, the rest
    replaced."""
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        out[key] = _merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def current_components(client: Any, thing_group_arn: str) -> dict[str, Any]:
    """The components of the group's latest deployment (none yet: empty). That deployment is built on whatever its
    status; a canceled or failed one is said, as its components may not be what the gateways run."""
    latest = client.list_deployments(targetArn=thing_group_arn, historyFilter="LATEST_ONLY").get("deployments", [])
    if not latest:
        return {}
    current = client.get_deployment(deploymentId=latest[0]["deploymentId"])
    components = dict(current.get("components", {}))
    if current.get("deploymentStatus") in ("CANCELED", "FAILED"):
        versions = ", ".join(f"{name} {c.get('componentVersion')}" for name, c in sorted(components.items()))
        log.warning(
            "the latest deployment %s of %s is %s; this deployment keeps its components (%s): name the versions "
            "the gateways should run if those are not",
            *(latest[0]["deploymentId"], thing_group_arn, current["deploymentStatus"], versions),
        )
    return components


def create_deployment(request: DeploymentRequest, *, region: str | None = None, client: Any = None) -> str:
    """Create the deployment over the group's current one; returns its id."""
    if client is None:
        import boto3

        client = boto3.client("greengrassv2", region_name=region)
    _check_target(request.thing_group_arn)  # before anything is read from it
    current = current_components(client, request.thing_group_arn)
    response = client.create_deployment(**deployment_arguments(request, current))
    return str(response["deploymentId"])
