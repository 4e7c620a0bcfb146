"""The Lambdas deployed as container images: Dockerfile, Terraform and the image's pip step agree, without Docker.

There is no Docker daemon on the build machines, so the image itself is never built here. What is checked instead:
the Dockerfile's base matches the runtime Terraform and the zips use; its pip step (plantwatch with the named extras,
pinned by constraints.txt) resolves to binary wheels for the Lambda platform; the same step run on this machine
gives a tree from which the handler of the Dockerfile's CMD imports with nothing else on sys.path.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from infra_hcl import TERRAFORM, Config
from infra_tools import handler_probe, load_build_script

REPO = Path(__file__).resolve().parents[2]
bl = load_build_script()
IMAGES = sorted(f for f in bl.functions() if bl.is_image(f))
PINS = dict(
    line.strip().lower().replace("_", "-").split("==", 1)
    for line in (REPO / "constraints.txt").read_text().splitlines()
    if "==" in line
)

# Imported when present (this venv has them for other extras), not needed: the image works without them.
OPTIONAL = {
    "awscrt": "botocore uses the AWS CRT only if it is installed",
    "certifi": "botocore falls back to its own CA bundle",
    "cloudpickle": "pyarrow imports it only if it is installed",
}


def _modules() -> dict[str, dict[str, Any]]:
    return Config.read(TERRAFORM).modules_from("./modules/lambda_function")


def _terraform_env(function: str) -> dict[str, str]:
    """The function's Terraform environment with variables at their defaults (as the Lambda would see it)."""
    return Config.read(TERRAFORM).environment(_modules()[function])


def test_the_image_functions_are_the_ones_terraform_deploys_as_images() -> None:
    modules = _modules()
    as_images = sorted(name for name, body in modules.items() if body.get("package_type") == "Image")
    assert IMAGES == as_images == ["retrain", "stream_processor"]
    for name in IMAGES:
        body = modules[name]
        assert body["image_uri"] == f"${{local.{name}_image_uri}}"
        assert "package_file" not in body, f"{name}: an Image function has no zip"
        assert "handler" not in body, f"{name}: the handler is the Dockerfile's CMD"
    ecr = (TERRAFORM / "ecr.tf").read_text()
    for name in IMAGES:
        assert re.search(rf"^\s+{name}\s+=\s+local\.{name}_name$", ecr, re.MULTILINE), f"no ECR repository for {name}"
    zips = sorted(name for name, body in modules.items() if body.get("package_type", "Zip") == "Zip")
    assert zips == ["analytics_api"], "the functions that fit stay zips"


def test_ecr_repositories_are_immutable_scanned_encrypted_and_expire_old_images() -> None:
    config = Config.read(TERRAFORM)
    repository = config.resources("aws_ecr_repository")[("aws_ecr_repository", "lambda")]
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert repository["image_scanning_configuration"][0]["scan_on_push"] is True
    encryption = repository["encryption_configuration"][0]
    assert encryption == {"encryption_type": "KMS", "kms_key": "${aws_kms_key.this.arn}"}
    assert ("aws_ecr_lifecycle_policy", "lambda") in config.resources("aws_ecr_lifecycle_policy")
    pull = config.data("aws_iam_policy_document")[("aws_iam_policy_document", "ecr_lambda_pull")]
    (statement,) = pull["statement"]
    assert sorted(statement["actions"]) == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert statement["principals"][0]["identifiers"] == ["lambda.amazonaws.com"]
    assert statement["condition"][0]["variable"] == "aws:sourceArn", "only this deployment's functions may pull"


@pytest.mark.parametrize("function", IMAGES)
def test_dockerfile_matches_the_runtime_and_copies_the_handler_of_its_cmd(function: str) -> None:
    spec = bl.image_spec(function)
    runtime = Config.read(TERRAFORM / "modules" / "lambda_function").named("variable")["runtime"]["default"]
    assert spec.base == f"public.ecr.aws/lambda/python:{spec.python}"
    assert f"python{spec.python}" == runtime == f"python{bl.DEFAULT_PYTHON}", "image, zips and resolution agree"
    assert spec.constrained, "the image installs the versions pinned in constraints.txt"
    assert {"pyproject.toml", "README.md", "constraints.txt", "src"} <= set(spec.copies)
    module_name, _, _ = spec.handler.rpartition(".")
    handler_file = f"cloud/lambdas/{function}/{module_name.replace('.', '/')}.py"
    assert (REPO / handler_file).is_file()
    assert handler_file in spec.copies, f"the image must COPY {handler_file} for CMD {spec.handler}"
    assert not (REPO / "cloud" / "lambdas" / function / bl.REQUIREMENTS_FILE).exists(), "extras, not requirements"


def test_dockerfile_parser_refuses_what_the_checks_rely_on(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("def handler(e, c): ...\n")
    dockerfile = tmp_path / "fn" / "Dockerfile"
    good = (REPO / "cloud" / "lambdas" / "retrain" / "Dockerfile").read_text()
    dockerfile.write_text(good.replace("public.ecr.aws/lambda/python", "python"))
    with pytest.raises(bl.BuildError, match="not an AWS Lambda Python base image"):
        bl.image_spec("fn", tmp_path)
    dockerfile.write_text(good.replace('"/tmp/plantwatch[cloud,train]"', "scikit-learn"))
    with pytest.raises(bl.BuildError, match="extras"):
        bl.image_spec("fn", tmp_path)
    dockerfile.write_text(good.replace('CMD ["app.handler"]', "CMD python -m app"))
    with pytest.raises(bl.BuildError):
        bl.image_spec("fn", tmp_path)
    dockerfile.write_text(good.replace("[cloud,train]", "[cloud,nosuch]"))
    with pytest.raises(bl.BuildError, match="nosuch"):
        bl.requirements("fn", tmp_path)
    with pytest.raises(bl.BuildError, match="docker build --platform linux/arm64"):
        bl.build("fn", tmp_path / "out", deps=False, lambdas_dir=tmp_path)


@pytest.mark.parametrize("function", IMAGES)
def test_the_images_pip_step_resolves_to_lambda_platform_wheels_at_the_pinned_versions(function: str) -> None:
    """Asks the package index (pip's cache helps): dependency metadata only, nothing is installed."""
    spec = bl.image_spec(function)
    resolved = bl.resolve(
        bl.requirements(function), arch=bl.DEFAULT_ARCH, python=spec.python, constraints=REPO / "constraints.txt"
    )
    unpinned = sorted(name for name in resolved if name not in PINS)
    assert not unpinned, f"constraints.txt does not pin {unpinned}: run `make lock`"
    moved = {name: (version, PINS[name]) for name, version in resolved.items() if PINS[name] != version}
    assert not moved, f"resolved versions differ from the pins: {moved}"
    # The distributions the handler imports (seen from this venv) are all in the image.
    result = subprocess.run(
        [sys.executable, "-c", handler_probe(spec.handler)],
        cwd=REPO / "cloud" / "lambdas" / function,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", **_terraform_env(function)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    imported = json.loads(result.stdout)["top"]
    needed = {d.lower().replace("_", "-") for top in imported for d in owners.get(top, [])}
    needed -= {"plantwatch", *OPTIONAL}
    assert needed, "the probe saw no third-party import"
    assert needed <= resolved.keys(), f"{function} imports {sorted(needed - resolved.keys())}: extend its extras"


@pytest.mark.parametrize("function", IMAGES)
def test_the_handler_imports_from_the_images_pip_step_alone(function: str, tmp_path: Path) -> None:
    """Runs the Dockerfile's pip install here (this machine's wheels, pip's cache helps) and imports with -S."""
    tree = tmp_path / "task"
    bl.install_image_tree(function, tree)
    spec = bl.image_spec(function)
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-c", handler_probe(spec.handler)],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
        | _terraform_env(function),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["callable"]
    stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
    outside = [f for f in seen["files"] if f and not f.startswith((str(tree), *stdlib))]
    assert not outside, f"imported from outside the image's tree: {outside[:5]}"
    assert any(f.startswith(str(tree / "plantwatch")) for f in seen["files"]), "plantwatch comes from the tree"
