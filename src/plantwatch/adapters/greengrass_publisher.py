"""Publishing a promoted model to gateways: an S3 artifact, a Greengrass component version, a deployment per line.

The model is its own component (``<prefix>.<model name>``, version ``1.0.<registry version>``) whose artifact is
the verified ``.pwf`` file; the gateway component reads it and checks the SHA-256 in the configuration. A
deployment to a thing group replaces that group's whole component set, so the line's latest deployment is read
first and only the model component's version changes in it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from plantwatch.models.registry import RegistryEntry

log = logging.getLogger(__name__)


def _token(*parts: str) -> str:
    """An idempotency token (``[a-zA-Z0-9-]{1,64}``): retrying a publish creates nothing twice."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


class GreengrassModelPublisher:
    """Uploads the artifact, creates the component version, and deploys it to each line's thing group."""

    def __init__(
        self,
        *,
        greengrass: Any,
        s3: Any,
        artifact_bucket: str,
        thing_group_arn: Callable[[str], str],
        component_prefix: str = "com.plantwatch.model",
        artifact_prefix: str = "greengrass/artifacts",
    ) -> None:
        self.greengrass = greengrass
        self.s3 = s3
        self.artifact_bucket = artifact_bucket
        self.thing_group_arn = thing_group_arn
        self.component_prefix = component_prefix
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

    def publish(self, entry: RegistryEntry, artifact: bytes, lines: Sequence[str]) -> dict[str, Any]:
        """Make ``entry`` reach the gateways of ``lines``; returns the component and deployment ids."""
        component = f"{self.component_prefix}.{entry.name}"
        version = f"1.0.{entry.version}"
        key = f"{self.artifact_prefix}/{component}/{version}/model.pwf"
        self.s3.put_object(Bucket=self.artifact_bucket, Key=key, Body=artifact)
        recipe = self.recipe(entry, component, version, f"s3://{self.artifact_bucket}/{key}")
        created = self.greengrass.create_component_version(
            inlineRecipe=json.dumps(recipe, sort_keys=True).encode(), clientToken=_token(component, version)
        )
        deployments = [self._deploy(line, component, version) for line in lines]
        log.info("model published", extra={"component": component, "version": version, "lines": list(lines)})
        return {
            "component": component,
            "componentVersion": version,
            "componentArn": created["arn"],
            "artifact": f"s3://{self.artifact_bucket}/{key}",
            "recipe": recipe,
            "deployments": deployments,
        }

    def _deploy(self, line: str, component: str, version: str) -> dict[str, str]:
        target = self.thing_group_arn(line)
        components: dict[str, Any] = {}
        policies: dict[str, Any] | None = None
        latest = self.greengrass.list_deployments(targetArn=target, historyFilter="LATEST_ONLY").get("deployments", [])
        if latest:
            current = self.greengrass.get_deployment(deploymentId=latest[0]["deploymentId"])
            components = dict(current.get("components", {}))
            policies = current.get("deploymentPolicies")
        components[component] = {"componentVersion": version}
        request: dict[str, Any] = {
            "targetArn": target,
            "deploymentName": f"{component} {version}",
            "components": components,
            "clientToken": _token(target, component, version),
        }
        request["deploymentPolicies"] = policies or {
            "failureHandlingPolicy": "ROLLBACK",
            "componentUpdatePolicy": {"action": "NOTIFY_COMPONENTS", "timeoutInSeconds": 60},
        }
        response = self.greengrass.create_deployment(**request)
        return {"line": line, "targetArn": target, "deploymentId": response["deploymentId"]}
