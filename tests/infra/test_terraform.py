"""terraform fmt, init from the offline provider mirror, validate, and checkov with zero failed checks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from infra_hcl import TERRAFORM
from infra_tools import PLUGIN_DIR, checkov, terraform, tool_env


def test_terraform_files_are_formatted() -> None:
    result = subprocess.run(
        [terraform(), "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM)],
        capture_output=True,
        text=True,
        env=tool_env(),
        check=False,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive cloud/terraform`:\n{result.stdout}"


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of cloud/terraform, initialised from /opt/tf-plugins (the repository stays clean)."""
    work = tmp_path_factory.mktemp("tf") / "terraform"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
    result = subprocess.run(
        [terraform(), "init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}"],
        cwd=work,
        capture_output=True,
        text=True,
        env=tool_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return work


def test_terraform_validates_offline(initialised: Path) -> None:
    result = subprocess.run(
        [terraform(), "validate", "-json", "-no-color"],
        cwd=initialised,
        capture_output=True,
        text=True,
        env=tool_env(),
        check=False,
    )
    report = json.loads(result.stdout)
    problems = [f"{d['severity']}: {d['summary']} {d.get('detail', '')}" for d in report["diagnostics"]]
    assert report["valid"], "\n".join(problems)
    assert report["error_count"] == 0
    assert report["warning_count"] == 0, "\n".join(problems)


def test_init_used_the_mirrored_aws_provider(initialised: Path) -> None:
    lock = (initialised / ".terraform.lock.hcl").read_text()
    assert re.search(r'provider "registry.terraform.io/hashicorp/aws" \{\s+version\s+= "5\.100\.0"', lock), lock
    providers = re.findall(r'provider "([^"]+)"', lock)
    assert providers == ["registry.terraform.io/hashicorp/aws"], "only the mirrored provider may be used"


def test_checkov_finds_no_failed_checks_and_every_skip_is_justified() -> None:
    result = subprocess.run(
        [str(checkov()), "-d", str(TERRAFORM), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        env=tool_env(),
        check=False,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["passed"] > 100, "checkov scanned too little: did it parse the modules?"
    assert summary["parsing_errors"] == 0
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(reason.strip()) >= 30, f"{skipped['check_id']} on {skipped['resource']} needs a real justification"


def test_lambda_module_plans_zip_and_image_functions(tmp_path: Path) -> None:
    """`terraform test` of modules/lambda_function with a mocked provider: plans only, offline."""
    work = tmp_path / "lambda_function"
    shutil.copytree(TERRAFORM / "modules" / "lambda_function", work, ignore=shutil.ignore_patterns(".terraform*"))
    for command in (
        ["init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}"],
        ["test", "-no-color"],
    ):
        result = subprocess.run(
            [terraform(), *command], cwd=work, capture_output=True, text=True, env=tool_env(), check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Success! [1-9]\d* passed, 0 failed", result.stdout), result.stdout


def test_root_module_plans_on_first_apply_and_names_fit_their_limits(tmp_path: Path) -> None:
    """`terraform test` of the root with a mocked provider: a first plan works (no count or for_each waits on
    apply) and names fit IAM, Lambda, S3 and EventBridge limits at the longest project_name. Plans only."""
    work = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    packages = work / "tests" / "fake-packages"
    packages.mkdir(parents=True)
    (packages / "analytics_api.zip").write_bytes(b"placeholder: the plan hashes the file, nothing uploads it")
    for command in (
        ["init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}"],
        ["test", "-no-color"],
    ):
        result = subprocess.run(
            [terraform(), *command], cwd=work, capture_output=True, text=True, env=tool_env(), check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Success! 7 passed, 0 failed", result.stdout), result.stdout
