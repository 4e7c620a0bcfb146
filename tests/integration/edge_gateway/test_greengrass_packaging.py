"""Greengrass packaging: gdk-config.json, the custom build (no GDK installed), recipes, wheel, deploy."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import ANY, Stubber

from plantwatch.adapters.greengrass_deploy import DeploymentRequest, create_deployment
from plantwatch.models import ForestModel, artifact_sha256

ROOT = Path(__file__).resolve().parents[3]
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


def checkout_copy(tmp_path: Path) -> Path:
    """The parts of the repository a build needs, copied so the test never writes into the checkout."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", root)
    shutil.copy2(ROOT / "gdk-config.json", root)
    shutil.copy2(ROOT / "recipe.yaml", root, follow_symlinks=False)
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "edge", root / "edge", ignore=shutil.ignore_patterns("__pycache__", "greengrass-build"))
    shutil.copytree(ROOT / "models", root / "models")
    return root


def check_gdk_config(path: Path) -> tuple[str, dict[str, Any]]:
    """The GDK CLI's rules: one component; author, version, custom build command; publish; a project recipe.

    GDK looks for exactly one of recipe.json / recipe.yaml next to gdk-config.json, and its publish step
    reads greengrass-build/recipes/ under that name (checked by the build tests).
    """
    recipes = [p.name for p in path.parent.iterdir() if p.name in ("recipe.json", "recipe.yaml")]
    assert recipes == ["recipe.yaml"]
    assert yaml.safe_load((path.parent / "recipe.yaml").read_text())["ComponentName"] == "{COMPONENT_NAME}"
    config = json.loads(path.read_text())
    assert set(config) == {"component", "gdk_version"}
    assert SEMVER.match(config["gdk_version"])
    [(name, component)] = config["component"].items()  # GDK allows exactly one component per config
    assert set(component) == {"author", "version", "build", "publish"}
    assert component["author"]
    assert SEMVER.match(component["version"]) or component["version"] == "NEXT_PATCH"
    assert component["build"]["build_system"] == "custom"
    assert isinstance(component["build"]["custom_build_command"], list)
    assert set(component["publish"]) >= {"bucket", "region"}
    return name, component


def run_gdk_build(component: dict[str, Any], cwd: Path) -> None:
    """Run the custom build command exactly as GDK would, with a bare interpreter (-S: no site-packages)."""
    command = list(component["build"]["custom_build_command"])
    assert command[0] == "python3"
    done = subprocess.run([sys.executable, "-S", *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_root_gdk_config_builds_greengrass_build_without_gdk_or_site_packages(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path)
    name, component = check_gdk_config(root / "gdk-config.json")
    assert name == "com.plantwatch.Gateway"
    version = component["version"]
    assert version == tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    run_gdk_build(component, root)
    out = root / "greengrass-build"
    assert [p.name for p in (out / "recipes").iterdir()] == ["recipe.yaml"]
    recipe = yaml.safe_load((out / "recipes" / "recipe.yaml").read_text())
    assert recipe["ComponentName"] == name  # gdk publish refuses a build recipe of another component
    assert recipe["ComponentVersion"] == version
    text = (out / "recipes" / "recipe.yaml").read_text()
    assert "{COMPONENT_" not in text
    assert "{WHEEL}" not in text
    # every artifact the recipe names was built (gdk publish rewrites s3 URIs by these file names)
    artifacts = out / "artifacts" / name / version
    for artifact in recipe["Manifests"][0]["Artifacts"]:
        assert artifact["URI"].startswith("s3://")
        assert (artifacts / artifact["URI"].rsplit("/", 1)[1]).is_file()
    # the Install step builds a venv from the bundled wheel; Run starts the thin main.py from that venv
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    wheel = next(artifacts.glob("plantwatch-*.whl"))
    assert "python3 -m venv {work:path}/venv" in lifecycle["Install"]["Script"]
    assert f"{{artifacts:path}}/{wheel.name}[edge]" in lifecycle["Install"]["Script"]
    assert lifecycle["Run"]["Script"].startswith("{work:path}/venv/bin/python")
    assert len((artifacts / "main.py").read_text().splitlines()) <= 20


def test_access_control_is_least_privilege(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path)
    run_gdk_build(check_gdk_config(root / "gdk-config.json")[1], root)
    recipe_path = root / "greengrass-build" / "recipes" / "recipe.yaml"
    access = yaml.safe_load(recipe_path.read_text())["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]
    assert set(access) == {"aws.greengrass.ipc.mqttproxy", "aws.greengrass.ipc.pubsub"}
    operations = set()
    allowed = {
        "aws.greengrass#PublishToIoTCore": {f"plantwatch/gateways/+/{k}" for k in ("batches", "alerts", "summaries")},
        "aws.greengrass#PublishToTopic": {"plantwatch/floor/*/alerts"},
        "aws.greengrass#SubscribeToTopic": {"plantwatch/floor/*/alerts/ack"},
    }
    for policies in access.values():
        for policy in policies.values():
            operations.update(policy["operations"])
            for operation in policy["operations"]:
                # only the gateway topics, one level free for the gateway id: no '#', no topic beyond them, and
                # no {iot:thingName} (a nucleus leaves it as text unless interpolateComponentConfiguration is on)
                assert set(policy["resources"]) <= allowed[operation], (operation, policy["resources"])
    assert operations == {
        "aws.greengrass#PublishToIoTCore",
        "aws.greengrass#PublishToTopic",
        "aws.greengrass#SubscribeToTopic",
    }


def test_model_component_builds_on_its_own_and_carries_no_code(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path)
    folder = root / "edge" / "components" / "com.plantwatch.Model"
    name, component = check_gdk_config(folder / "gdk-config.json")
    assert name == "com.plantwatch.Model"
    run_gdk_build(component, folder)
    out = folder / "greengrass-build"
    recipe = yaml.safe_load((out / "recipes" / "recipe.yaml").read_text())
    assert recipe["ComponentName"] == name
    files = sorted(p.name for p in (out / "artifacts" / name / component["version"]).iterdir())
    assert files == ["model.pwf"]
    # the committed baseline of the Gateway recipe's default line, named with its SHA-256 for the gateway's check
    packed = out / "artifacts" / name / component["version"] / "model.pwf"
    assert packed.read_bytes() == (ROOT / "models" / "plant-1.line-1.pwf").read_bytes()
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert defaults["sha256"] == artifact_sha256(packed)
    assert defaults["modelName"] == ForestModel.load(packed).info.name == "plant-1.line-1"
    assert [a["URI"].rsplit("/", 1)[1] for a in recipe["Manifests"][0]["Artifacts"]] == files
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"] == {}
    gateway = yaml.safe_load((ROOT / "edge/components/com.plantwatch.Gateway/recipe.yaml").read_text())
    assert name in gateway["ComponentDependencies"]


def test_bundled_wheel_installs_and_imports(tmp_path: Path) -> None:
    root = checkout_copy(tmp_path)
    run_gdk_build(check_gdk_config(root / "gdk-config.json")[1], root)
    [wheel] = (root / "greengrass-build" / "artifacts").rglob("plantwatch-*.whl")
    target = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import plantwatch.edge.config as c, plantwatch; print(plantwatch.__file__)"],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(target))
    metadata = next(target.glob("plantwatch-*.dist-info")) / "METADATA"
    assert 'extra == "edge"' in metadata.read_text()


def test_edge_deploy_creates_a_thing_group_deployment(tmp_path: Path) -> None:
    config = tmp_path / "gw.json"
    config.write_text(json.dumps({"gateway": {"plant": "plant-7"}}))
    client = boto3.client("greengrassv2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    group = "arn:aws:iot:eu-west-1:123456789012:thinggroup/line-gateways"
    with Stubber(client) as stub:  # validates the request against the real greengrassv2 service model
        stub.add_response("list_deployments", {"deployments": []}, {"targetArn": group, "historyFilter": "LATEST_ONLY"})
        stub.add_response(
            "create_deployment",
            {"deploymentId": "d-123", "iotJobId": "j-1"},
            {
                "targetArn": group,
                "deploymentName": "plantwatch-gateways",
                "components": {
                    "com.plantwatch.Gateway": {
                        "componentVersion": "0.1.0",
                        "configurationUpdate": {
                            "merge": json.dumps({"gateway": {"plant": "plant-7"}}),
                            # the alert counts an old recipe's defaults left on devices: unset, the model's count
                            "reset": ["/gateway/alerts/raise_after", "/gateway/alerts/clear_after"],
                        },
                    },
                    "com.plantwatch.Model": {"componentVersion": "0.1.3"},
                },
                "deploymentPolicies": {
                    "failureHandlingPolicy": "ROLLBACK",
                    "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
                    "configurationValidationPolicy": {"timeoutInSeconds": 30},
                },
            },
        )
        request = DeploymentRequest(
            thing_group_arn=group, gateway_version="0.1.0", model_version="0.1.3", gateway_config=str(config)
        )
        assert create_deployment(request, client=client) == "d-123"
        stub.assert_no_pending_responses()
    with pytest.raises(ValueError, match="thing group ARN"):
        create_deployment(
            DeploymentRequest(thing_group_arn="arn:aws:iot:eu-west-1:1:thing/x", gateway_version="1"), client=client
        )


def test_edge_deploy_keeps_the_groups_model_version_other_components_and_configuration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = boto3.client("greengrassv2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    group = "arn:aws:iot:eu-west-1:123456789012:thinggroup/pw-line-plant-1-line-1"
    # GIVEN the group runs the gateway 0.1.0 with a configuration, the line's retrained model 1.0.4 and the spooler
    merge = {"gateway": {"plant": "plant-1", "batch_interval_ms": 5000}}
    running = {
        "com.plantwatch.Gateway": {"componentVersion": "0.1.0", "configurationUpdate": {"merge": json.dumps(merge)}},
        "com.plantwatch.Model": {"componentVersion": "1.0.4"},
        "aws.greengrass.DiskSpooler": {"componentVersion": "1.0.0"},
    }
    faster = tmp_path / "faster.json"
    faster.write_text(json.dumps({"gateway": {"batch_interval_ms": 2000}}))

    def deploy(config: Path | None, gateway: dict[str, object], status: str = "ACTIVE") -> None:
        with Stubber(client) as stub:
            stub.add_response(
                "list_deployments",
                {"deployments": [{"targetArn": group, "deploymentId": "d-1", "isLatestForTarget": True}]},
                {"targetArn": group, "historyFilter": "LATEST_ONLY"},
            )
            stub.add_response(
                "get_deployment",
                {"targetArn": group, "deploymentId": "d-1", "deploymentStatus": status, "components": running},
                {"deploymentId": "d-1"},
            )
            expected = {"targetArn": group, "deploymentName": "plantwatch-gateways", "deploymentPolicies": ANY}
            stub.add_response(
                "create_deployment",
                {"deploymentId": "d-2"},
                {**expected, "components": {**running, "com.plantwatch.Gateway": gateway}},
            )
            request = DeploymentRequest(
                thing_group_arn=group, gateway_version="0.2.0", gateway_config=None if config is None else str(config)
            )
            assert create_deployment(request, client=client) == "d-2"
            stub.assert_no_pending_responses()

    counts = ["/gateway/alerts/raise_after", "/gateway/alerts/clear_after"]
    # WHEN a new gateway version is deployed without --model-version or --gateway-config THEN only the gateway's
    # version changes: the line keeps its model, the spooler, and the configuration new devices get (and the
    # alert counts an old recipe's defaults left on devices are reset, so the gateways follow their model's)
    deploy(None, {"componentVersion": "0.2.0", "configurationUpdate": {"merge": json.dumps(merge), "reset": counts}})
    # WHEN a configuration is given THEN it is merged over the one before, not in its place
    faster_merge = {"gateway": {"plant": "plant-1", "batch_interval_ms": 2000}}
    update = {"merge": json.dumps(faster_merge), "reset": counts}
    deploy(faster, {"componentVersion": "0.2.0", "configurationUpdate": update})
    # WHEN the operator sets a count THEN it is merged and not reset; the other count still is
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps({"gateway": {"alerts": {"raise_after": 4}}}))
    pinned_merge = {"gateway": {**merge["gateway"], "alerts": {"raise_after": 4}}}
    update = {"merge": json.dumps(pinned_merge), "reset": ["/gateway/alerts/clear_after"]}
    deploy(pinned, {"componentVersion": "0.2.0", "configurationUpdate": update})
    ours = "plantwatch.adapters.greengrass_deploy"
    assert not [r for r in caplog.records if r.name == ours]
    # WHEN the group's latest deployment was canceled THEN it is built on all the same, and the operator is told
    with caplog.at_level(logging.WARNING, logger=ours):
        update = {"merge": json.dumps(merge), "reset": counts}
        deploy(None, {"componentVersion": "0.2.0", "configurationUpdate": update}, "CANCELED")
    [record] = [r for r in caplog.records if r.name == ours]
    assert "d-1" in record.getMessage() and "CANCELED" in record.getMessage()
    assert "com.plantwatch.Model 1.0.4" in record.getMessage()


def _install_script(root: Path, work: Path) -> tuple[str, Path]:
    """The built Gateway recipe's Install script with the nucleus's paths filled in; and its artifact dir."""
    out = root / "greengrass-build"
    recipe = yaml.safe_load((out / "recipes" / "recipe.yaml").read_text())
    [artifacts] = (out / "artifacts" / recipe["ComponentName"]).iterdir()
    script = recipe["Manifests"][0]["Lifecycle"]["Install"]["Script"]
    return script.replace("{work:path}", str(work)).replace("{artifacts:path}", str(artifacts)), artifacts


def test_the_install_step_runs_again_offline_and_takes_a_rebuilt_wheel(tmp_path: Path) -> None:
    """A new model version re-runs Install (the Run environment changes). Once the venv has its dependencies, that
    must work with no package index at all, and must put this build's code in even at an unchanged version."""
    root = checkout_copy(tmp_path)
    component = check_gdk_config(root / "gdk-config.json")[1]
    run_gdk_build(component, root)
    work = tmp_path / "work"
    work.mkdir()
    script, _ = _install_script(root, work)
    # GIVEN the first install, with the package index (the gateway's first deployment)
    first = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    # WHEN the code is rebuilt at the same version, and Install runs again with no index reachable
    init = root / "src" / "plantwatch" / "__init__.py"
    init.write_text(init.read_text() + "\nREBUILT = True\n")
    run_gdk_build(component, root)
    script, _ = _install_script(root, work)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    offline = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_NO_INDEX": "1"}
    offline |= {"PIP_FIND_LINKS": str(empty), "PIP_CONFIG_FILE": os.devnull}
    again = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600, env=offline)
    # THEN it succeeds, and the venv runs the rebuilt code
    assert again.returncode == 0, again.stderr
    code = "import plantwatch, plantwatch.edge.greengrass; print(plantwatch.REBUILT)"
    probe = subprocess.run(
        [str(work / "venv" / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "True", probe.stderr
