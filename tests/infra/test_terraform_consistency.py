"""The Terraform agrees with the code: handlers exist and import, env vars and IAM match what each Lambda does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from infra_code import REPO, scan
from infra_code import required_actions as actions_needed
from infra_hcl import TERRAFORM, Config, reference, statements
from infra_tools import load_build_script

from plantwatch.adapters.dynamo_alert_writer import EXPIRES_AT
from plantwatch.adapters.dynamo_alerts import table_definitions
from plantwatch.api.auth import COGNITO_SCOPE_CLAIMS
from plantwatch.contract import topics

LAMBDA_MODULE = "./modules/lambda_function"
# Set for a library, not read by our code: Powertools reads these two itself.
LIBRARY_ENV = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
# Resource "*" is acceptable only for actions that support no resource-level permissions.
STAR_RESOURCE_OK = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "timestream:DescribeEndpoints",
    "greengrass:CreateDeployment",
    "greengrass:ListDeployments",  # List access level, no resource type in the service authorization reference
    "greengrass:GetComponentVersionArtifact",
    "greengrass:ResolveComponentCandidates",
    "greengrass:GetDeploymentConfiguration",
    "greengrass:ListThingGroupsForCoreDevice",
}
# AWS-managed policies we attach, and why they are acceptable.
MANAGED_POLICIES = {
    "AWSLambdaVPCAccessExecutionRole": "ENI management for VPC Lambdas; network interfaces only, no data",
    "AWSBackupServiceRolePolicyForBackup": "the role AWS Backup documents for taking backups",
    "AWSBackupServiceRolePolicyForRestores": "the role AWS Backup documents for restores",
}


@pytest.fixture(scope="module")
def root() -> Config:
    return Config.read(TERRAFORM)


build_lambdas = load_build_script()


def _lambda_modules() -> dict[str, dict[str, Any]]:
    return Config.read(TERRAFORM).modules_from(LAMBDA_MODULE)


def _function_dir(body: dict[str, Any]) -> Path:
    if body.get("package_type") == "Image":
        # Image functions: local.<function>_image_uri, built from cloud/lambdas/<function>/Dockerfile.
        match = re.fullmatch(r"\$\{local\.([a-z0-9_]+)_image_uri\}", body["image_uri"])
        assert match, f"image_uri {body['image_uri']!r} must be local.<function>_image_uri"
        assert build_lambdas.is_image(match.group(1)), f"cloud/lambdas/{match.group(1)}/Dockerfile is missing"
        return REPO / "cloud" / "lambdas" / match.group(1)
    match = re.search(r"/([a-z0-9_]+)\.zip$", body["package_file"])
    assert match, f"package_file {body['package_file']!r} must end in <function>.zip"
    return REPO / "cloud" / "lambdas" / match.group(1)


def _handler(body: dict[str, Any]) -> str:
    """The handler Lambda calls: the module's for a zip, the Dockerfile's CMD for an image."""
    if body.get("package_type") == "Image":
        return str(build_lambdas.image_spec(_function_dir(body).name).handler)
    return str(body["handler"])


def _policy(root: Config, body: dict[str, Any]) -> dict[str, Any]:
    ref = reference(body["policy_json"])
    match = re.fullmatch(r"data\.aws_iam_policy_document\.(\w+)\.json", ref or "")
    assert match, f"policy_json must be an aws_iam_policy_document's json, not {body['policy_json']!r}"
    return root.data("aws_iam_policy_document")[("aws_iam_policy_document", match.group(1))]


def _allowed(document: dict[str, Any]) -> dict[str, list[str]]:
    """action -> resources it is allowed on."""
    allowed: dict[str, list[str]] = {}
    for statement in statements(document):
        if statement.get("effect", "Allow") == "Allow":
            resources = statement.get("resources", [])
            for action in statement.get("actions", []):
                # A list of ARNs, or one expression (concat(...)) that yields them.
                allowed.setdefault(action, []).extend(resources if isinstance(resources, list) else [resources])
    return allowed


LAMBDAS = sorted(_lambda_modules())


def test_every_lambda_in_terraform_is_checked() -> None:
    assert sorted(["stream_processor", "analytics_api", "retrain"]) == LAMBDAS
    declared = {_function_dir(body).name for body in _lambda_modules().values()}
    assert declared == set(build_lambdas.functions()), "a cloud/lambdas/<name>/app.py that Terraform doesn't deploy"


@pytest.mark.parametrize("name", LAMBDAS)
def test_handler_exists_and_imports_from_the_built_package(name: str, tmp_path: Path) -> None:
    body = _lambda_modules()[name]
    function_dir = _function_dir(body)
    handler = _handler(body)
    module_name, _, attribute = handler.rpartition(".")
    assert (function_dir / f"{module_name.replace('.', '/')}.py").is_file(), f"{handler} in {function_dir}"

    if build_lambdas.is_image(function_dir.name):
        # What the image's COPY steps put in ${LAMBDA_TASK_ROOT} (test_lambda_images.py installs its wheels too).
        build_lambdas.stage(function_dir.name, tmp_path / "pkg")
    else:
        built = build_lambdas.build(function_dir.name, tmp_path / "out", deps=False)
        with zipfile.ZipFile(built.path) as archive:
            archive.extractall(tmp_path / "pkg")
    env = Config.read(TERRAFORM).environment(body)
    probe = (
        "import importlib, json, sys;"
        f"m = importlib.import_module({module_name!r});"
        f"h = getattr(m, {attribute!r});"
        "import plantwatch;"
        "print(json.dumps({'callable': callable(h), 'module': m.__file__, 'plantwatch': plantwatch.__file__}))"
    )
    result = subprocess.run(
        [sys.executable, "-s", "-c", probe],
        cwd=tmp_path / "pkg",
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "pkg"), "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin", **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["callable"]
    assert seen["module"].startswith(str(tmp_path / "pkg")), "the handler must come from the package"
    assert seen["plantwatch"].startswith(str(tmp_path / "pkg")), "plantwatch must come from the package"


@pytest.mark.parametrize("name", LAMBDAS)
def test_environment_matches_what_the_code_reads(name: str) -> None:
    body = _lambda_modules()[name]
    facts = scan(_function_dir(body) / "app.py")
    configured = set(body.get("environment", {}))
    missing = facts.env_required - configured
    assert not missing, f"{name} reads {sorted(missing)} but Terraform doesn't set them"
    unread = configured - facts.env_required - facts.env_optional - LIBRARY_ENV
    assert not unread, f"Terraform sets {sorted(unread)} for {name} but no code in its import closure reads them"


@pytest.mark.parametrize("name", LAMBDAS)
def test_iam_allows_every_aws_call_the_code_makes(name: str, root: Config) -> None:
    body = _lambda_modules()[name]
    facts = scan(_function_dir(body) / "app.py")
    assert not facts.unanalyzable, facts.unanalyzable
    allowed = _allowed(_policy(root, body))
    needed = actions_needed(facts.operations)
    assert not needed - allowed.keys(), (
        f"{name} calls {sorted(facts.operations)}; IAM lacks {sorted(needed - allowed.keys())}"
    )
    for action in needed:
        if "*" in allowed[action]:
            assert action in STAR_RESOURCE_OK, f"{name}: {action} is allowed on every resource"


def test_scanner_sees_the_calls_it_must_see(tmp_path: Path) -> None:
    # GIVEN a handler that uses boto3 the way the adapters do (client passed into another object)
    handler = tmp_path / "app.py"
    handler.write_text(
        "import os, boto3\n"
        "TABLE = os.environ['TIMESTREAM_TABLE']\n"
        "URL = os.environ.get('PLANTWATCH_ARCHIVE_URL', '')\n"
        "class Sink:\n"
        "    def __init__(self, client):\n"
        "        self._c = client\n"
        "    def write(self, records):\n"
        "        self._c.write_records(DatabaseName='d', TableName=TABLE, Records=records)\n"
        "from pydantic_settings import BaseSettings, SettingsConfigDict\n"
        "class Settings(BaseSettings):\n"
        "    model_config = SettingsConfigDict(env_prefix='plantwatch_')\n"
        "    sink: str\n"
        "    batch_size: int = 100\n"
        "s3 = boto3.client('s3')\n"
        "sink = Sink(boto3.client(service_name='timestream-write'))\n"
        "def handler(event, context):\n"
        "    s3.get_paginator('list_objects_v2')\n"
        "    s3.put_object(Bucket='b', Key='k', Body=b'')\n"
    )
    # WHEN it is scanned
    facts = scan(handler)
    # THEN env reads, services, operations and the IAM actions they need are all found
    assert facts.env_required == {"TIMESTREAM_TABLE", "PLANTWATCH_SINK"}
    assert facts.env_optional == {"PLANTWATCH_ARCHIVE_URL", "PLANTWATCH_BATCH_SIZE"}
    assert facts.services == {"s3", "timestream-write"}
    assert facts.operations == {("s3", "ListObjectsV2"), ("s3", "PutObject"), ("timestream-write", "WriteRecords")}
    assert actions_needed(facts.operations) == {
        "s3:ListBucket",
        "s3:PutObject",
        "kms:GenerateDataKey",
        "timestream:WriteRecords",
        "timestream:DescribeEndpoints",
    }


def _all_policy_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for directory in [TERRAFORM, *sorted((TERRAFORM / "modules").iterdir())]:
        config = Config.read(directory)
        documents += [(f"{directory.name}/{n}", d) for (_, n), d in config.data("aws_iam_policy_document").items()]
    return documents


@pytest.mark.parametrize(("where", "document"), _all_policy_documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_policy_allows_a_wildcard_action(where: str, document: dict[str, Any]) -> None:
    for statement in statements(document):
        assert "not_actions" not in statement, f"{where}: NotAction grants everything else"
        if statement.get("effect", "Allow") == "Allow":
            wild = [a for a in statement.get("actions", []) if "*" in a]
            assert not wild, f"{where}: {wild} (name each action)"
            # In identity policies Resource "*" means everything; in a key policy (with principals) the key.
            resources = statement.get("resources", [])
            if isinstance(resources, list) and "*" in resources and "principals" not in statement:
                broad = set(statement["actions"]) - STAR_RESOURCE_OK
                assert not broad, f"{where}: {sorted(broad)} allowed on every resource"


def test_every_policy_comes_from_a_checked_document() -> None:
    # Inline JSON would escape the wildcard test above; everything goes through aws_iam_policy_document.
    for directory in [TERRAFORM, *sorted((TERRAFORM / "modules").iterdir())]:
        config = Config.read(directory)
        for kind in ("aws_iam_role_policy", "aws_iam_policy", "aws_iot_policy", "aws_s3_bucket_policy"):
            for (_, name), body in config.resources(kind).items():
                ref = reference(body["policy"]) or ""
                assert re.fullmatch(r"data\.aws_iam_policy_document\.\w+\.json|var\.policy_json", ref), (
                    f"{directory.name}: {kind}.{name} policy must be an aws_iam_policy_document"
                )
    extra = Config.read(TERRAFORM).named("module")
    for name, body in extra.items():
        for statement in body.get("extra_policy_statements", []):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert statement["Effect"] != "Allow" or not any("*" in a for a in actions), f"module.{name}: {actions}"


def test_managed_policies_are_the_documented_ones() -> None:
    for directory in [TERRAFORM, *sorted((TERRAFORM / "modules").iterdir())]:
        config = Config.read(directory)
        for (_, name), body in config.resources("aws_iam_role_policy_attachment").items():
            text = json.dumps(body["policy_arn"])
            found = set(re.findall(r"policy/(?:service-role/)?([A-Za-z0-9]+)", text))
            assert found, f"{name}: no managed policy ARN found in {text}"
            assert found <= MANAGED_POLICIES.keys(), f"{name}: {found - MANAGED_POLICIES.keys()} is not reviewed"


def test_original_names_and_variables_are_kept(root: Config) -> None:
    variables = root.named("variable")
    for original in ("aws_region", "environment", "project_name", "vpc_cidr", "kinesis_shard_count"):
        assert original in variables
    locals_ = root.locals()
    assert locals_["stream_name"] == "${var.project_name}-sensor-data-stream"
    assert locals_["stream_processor_name"] == "${var.project_name}-anomaly-detection"
    assert locals_["timestream_database_name"] == '${replace(var.project_name, "-", "_")}_sensor_database'
    assert locals_["timestream_table_name"] == "sensor_readings"
    stream = root.resources("aws_kinesis_stream")[("aws_kinesis_stream", "this")]
    assert stream["name"] == "${local.stream_name}"
    assert _lambda_modules()["stream_processor"]["function_name"] == "${local.stream_processor_name}"
    tfvars = (TERRAFORM / "terraform.tfvars.example").read_text()
    for original in ("aws_region", "environment", "project_name", "vpc_cidr", "kinesis_shard_count"):
        assert re.search(rf"^{original}\s+=", tfvars, re.MULTILINE), f"{original} missing from the example"


def test_every_variable_has_type_description_and_validation_where_needed() -> None:
    for directory in [TERRAFORM, *sorted((TERRAFORM / "modules").iterdir())]:
        for name, body in Config.read(directory).named("variable").items():
            assert "type" in body, f"{directory.name}: variable {name} has no type"
            assert len(body.get("description", "")) > 10, f"{directory.name}: variable {name} has no description"
            if body["type"] == "number":
                assert body.get("validation"), f"variable {name}: a number can always be wrong, validate it"


def test_topic_rules_match_the_contract(root: Config) -> None:
    locals_ = root.locals()
    assert locals_["batch_topic_filter"] == topics.BATCH_TOPIC_FILTER
    assert locals_["alert_topic_filter"] == topics.ALERT_TOPIC_FILTER
    assert locals_["summary_topic_filter"] == topics.SUMMARY_TOPIC_FILTER
    assert locals_["legacy_topic_filter"] == "manufacturing/sensors/+/data"
    assert topics.batch_topic("gw-1") == f"{locals_['gateway_topic_root']}/gw-1/batches"
    stream_rules = locals_["stream_rules"]
    # Binary batches pass through unchanged only with SELECT * (no functions, no WHERE on binary payloads).
    assert stream_rules["gateway_batches"]["sql"] == "SELECT * FROM '${local.batch_topic_filter}'"
    assert stream_rules["legacy_raw_readings"]["sql"] == "SELECT * FROM '${local.legacy_topic_filter}'"
    assert stream_rules["gateway_summaries"]["sql"] == "SELECT * FROM '${local.summary_topic_filter}'"
    rule = root.resources("aws_iot_topic_rule")[("aws_iot_topic_rule", "stream")]
    kinesis = rule["kinesis"][0]
    assert kinesis["partition_key"] == "$${topic()}", "the partition key carries the topic, hence the gateway"
    assert rule["error_action"], "a failed put must land somewhere"
    # Gateways may publish exactly the contract's topics, under their own thing name.
    assert locals_["thing"] == "$${iot:Connection.Thing.ThingName}"
    policy = root.data("aws_iam_policy_document")[("aws_iam_policy_document", "gateway_iot")]
    publish = next(s for s in statements(policy) if s["actions"] == ["iot:Publish"])["resources"]
    own = (
        topics.batch_topic("${local.thing}"),
        topics.alert_topic("${local.thing}"),
        topics.summary_topic("${local.thing}"),
    )
    for topic in own:
        expected = topic.replace(locals_["gateway_topic_root"], "${local.gateway_topic_root}")
        assert f"${{local.iot_arn}}:topic/{expected}" in publish
    connect = next(s for s in statements(policy) if s["actions"] == ["iot:Connect"])["resources"]
    assert connect == ["${local.iot_arn}:client/${local.thing}"]
    alerts = root.resources("aws_iot_topic_rule")[("aws_iot_topic_rule", "alerts")]
    assert alerts["sql"] == "SELECT * FROM '${local.alert_topic_filter}'"
    assert alerts["error_action"]


def test_stream_event_source_mapping_cannot_block_a_shard(root: Config) -> None:
    mapping = root.resources("aws_lambda_event_source_mapping")[("aws_lambda_event_source_mapping", "stream_processor")]
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    assert mapping["destination_config"][0]["on_failure"][0]["destination_arn"]
    variables = root.named("variable")
    for setting, variable in (
        ("maximum_retry_attempts", "stream_max_retry_attempts"),
        ("maximum_record_age_in_seconds", "stream_max_record_age_seconds"),
    ):
        assert mapping[setting] == f"${{var.{variable}}}"
        condition = variables[variable]["validation"][0]["condition"]
        assert ">= 0" in condition or ">= 60" in condition, f"{variable} must exclude -1 (forever)"


def test_build_defaults_match_terraform(root: Config) -> None:
    assert root.named("variable")["lambda_architecture"]["default"] == build_lambdas.DEFAULT_ARCH
    module_vars = Config.read(TERRAFORM / "modules" / "lambda_function").named("variable")
    assert module_vars["runtime"]["default"] == f"python{build_lambdas.DEFAULT_PYTHON}"
    for function in build_lambdas.functions():
        if build_lambdas.is_image(function):
            assert build_lambdas.image_spec(function).python == build_lambdas.DEFAULT_PYTHON, function
    assert (
        root.locals()["lambda_package_dir"] == '${coalesce(var.lambda_package_dir, "${path.root}/../../build/lambda")}'
    )
    assert build_lambdas.DEFAULT_OUT == REPO / "build" / "lambda"


def test_alert_tables_match_the_adapter_and_are_protected(root: Config) -> None:
    tables = root.resources("aws_dynamodb_table")
    expected = table_definitions("alerts", "audit")
    for (_, name), definition in zip(
        [("aws_dynamodb_table", "alerts"), ("aws_dynamodb_table", "alert_audit")], expected, strict=True
    ):
        body = tables[("aws_dynamodb_table", name)]
        keys = {k["KeyType"]: k["AttributeName"] for k in definition["KeySchema"]}
        assert (body["hash_key"], body["range_key"]) == (keys["HASH"], keys["RANGE"]), name
        declared = {a["name"]: a["type"] for a in body["attribute"]}
        assert declared == {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
        indexes = {i["name"]: i["range_key"] for i in body.get("local_secondary_index", [])}
        assert indexes == {
            i["IndexName"]: i["KeySchema"][1]["AttributeName"] for i in definition.get("LocalSecondaryIndexes", [])
        }
        assert body["deletion_protection_enabled"] is True
        assert body["point_in_time_recovery"][0]["enabled"] is True
        assert body["server_side_encryption"][0]["kms_key_arn"] == "${aws_kms_key.this.arn}"
    # cleared alerts expire through the attribute the writer sets (only with a retention)
    assert tables[("aws_dynamodb_table", "alerts")]["ttl"] == [{"attribute_name": EXPIRES_AT, "enabled": True}]
    # the alerts topic reaches the stream (for the store) and SNS (for people)
    assert root.locals()["stream_rules"]["alert_events"]["sql"] == "SELECT * FROM '${local.alert_topic_filter}'"
    sns_rule = root.resources("aws_iot_topic_rule")[("aws_iot_topic_rule", "alerts")]["name"]
    assert not any(sns_rule.endswith(f"_{key}") for key in root.locals()["stream_rules"]), "rule names must differ"
    # the audit log is append-only for every role: nothing may update or delete its entries
    for (_, name), document in root.data("aws_iam_policy_document").items():
        for statement in statements(document):
            if "${aws_dynamodb_table.alert_audit.arn}" in statement.get("resources", []):
                assert set(statement["actions"]) <= {"dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem"}, name


def _authorizer_pool_and_client(root: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user pool and app client whose tokens the HTTP API's JWT authorizer accepts."""
    [jwt] = root.resources("aws_apigatewayv2_authorizer").values()
    [configuration] = jwt["jwt_configuration"]
    [audience] = configuration["audience"]
    client_ref = re.fullmatch(r"aws_cognito_user_pool_client\.(\w+)\.id", reference(audience) or "")
    pool_ref = re.search(r"\$\{aws_cognito_user_pool\.(\w+)\.id\}$", configuration["issuer"])
    assert client_ref and pool_ref, f"the authorizer must trust a pool and client of this module: {configuration}"
    client = root.resources("aws_cognito_user_pool_client")[("aws_cognito_user_pool_client", client_ref.group(1))]
    assert client["user_pool_id"] == f"${{aws_cognito_user_pool.{pool_ref.group(1)}.id}}"
    return root.resources("aws_cognito_user_pool")[("aws_cognito_user_pool", pool_ref.group(1))], client


@pytest.mark.parametrize("claim", COGNITO_SCOPE_CLAIMS)
def test_the_user_pool_defines_the_claims_the_api_scopes_by(claim: str, root: Config) -> None:
    # GIVEN a claim the cloud API reads a caller's plants or lines from (src/plantwatch/api/auth.py)
    pool, client = _authorizer_pool_and_client(root)
    assert claim.startswith("custom:"), f"{claim}: only custom attributes can carry a scope"
    # THEN the pool defines it as a custom String attribute an administrator can change
    schema = {attribute["name"]: attribute for attribute in pool.get("schema", [])}
    attribute = schema.get(claim.removeprefix("custom:"))
    assert attribute is not None, f"the user pool has no custom attribute for {claim}: every API call would be a 401"
    assert attribute["attribute_data_type"] == "String"
    assert attribute["mutable"] is True, f"{claim} must be changeable when a user's plants change"
    assert attribute.get("developer_only_attribute", False) is False, "a developer-only attribute is named dev:custom:"
    [constraints] = attribute["string_attribute_constraints"]
    assert 1 <= int(constraints["min_length"]) <= int(constraints["max_length"]) <= 2048
    # AND the app client's ID tokens carry it (Cognito includes custom attributes only when the client may read them)
    assert claim in client.get("read_attributes", []), f"{claim} must be in the dashboard client's read_attributes"
    # AND users cannot write it: with write access a user could grant themselves any plant (UpdateUserAttributes).
    # An unset or empty list is Cognito's default (write access), so the list must be explicit.
    writable = client.get("write_attributes")
    assert writable, "write_attributes must be set explicitly: unset, Cognito applies its default write access"
    assert claim not in writable, f"users could set their own {claim}"
    assert not [a for a in writable if a.startswith("custom:")], "no custom attribute is the user's to write"


def test_the_stream_processor_is_told_the_timestream_tables_own_retention(root: Config) -> None:
    """The sink quarantines a reading the table would refuse for its time, from the retention it is told: it
    must be the table's, or readings are quarantined that the table would take (or retried until given up)."""
    from plantwatch.cloud.settings import StreamSettings

    table = root.resources("aws_timestreamwrite_table")[("aws_timestreamwrite_table", "this")]
    [retention] = table["retention_properties"]
    [magnetic] = table["magnetic_store_write_properties"]
    env = _lambda_modules()["stream_processor"]["environment"]
    # GIVEN each setting the stream processor reads and the table setting it stands for
    pairs = {
        "TIMESTREAM_MEMORY_RETENTION_HOURS": retention["memory_store_retention_period_in_hours"],
        "TIMESTREAM_MAGNETIC_RETENTION_DAYS": retention["magnetic_store_retention_period_in_days"],
        "TIMESTREAM_MAGNETIC_WRITES": magnetic["enable_magnetic_store_writes"],
    }
    # THEN each is the table's own expression, or a reference to the table's attribute itself
    own_attribute = {
        "TIMESTREAM_MAGNETIC_WRITES": (
            "${aws_timestreamwrite_table.this.magnetic_store_write_properties[0].enable_magnetic_store_writes}"
        )
    }
    for name, expression in pairs.items():
        assert name in env, f"the stream processor is not told {name}: it falls back to a default of its own"
        assert env[name] in (expression, own_attribute.get(name)), f"{name} = {env[name]!r}, the table: {expression!r}"
    # AND with the variables' defaults, the settings the function builds are the table's
    defaults = {name: body.get("default") for name, body in root.named("variable").items()}

    def rendered(expression: Any) -> str:  # as Terraform renders it into the function's map(string)
        ref = reference(expression)
        value = defaults[ref.removeprefix("var.")] if ref and ref.startswith("var.") else expression
        return str(value).lower() if isinstance(value, bool) else str(value)

    settings = StreamSettings.from_env(
        {"PLANTWATCH_ARCHIVE_URL": "/tmp/archive", **{name: rendered(value) for name, value in pairs.items()}}
    )
    assert settings.memory_retention_hours == defaults["timestream_memory_retention_hours"]
    assert settings.magnetic_retention_days == defaults["timestream_magnetic_retention_days"]
    assert settings.magnetic_writes is magnetic["enable_magnetic_store_writes"]


#: IoT's pattern for thing group names (CreateThingGroup, thingGroupName): no '.', unlike a line name in a reading.
THING_GROUP_NAME = r"[a-zA-Z0-9:_-]+"


def test_retraining_covers_the_configured_plants_and_deploys_only_to_the_lines_thing_groups(root: Config) -> None:
    from plantwatch.contract.reading import IDENT_PATTERN

    body = _lambda_modules()["retrain"]
    env = body["environment"]
    # the schedule retrains every plant of var.plants
    assert env["PLANTWATCH_PLANTS"] == '${join(",", var.plants)}'
    plants = root.named("variable")["plants"]
    assert plants["default"] == ["plant-1"]
    # a plant or line name Terraform accepts is one the job accepts, and one a thing group name can hold
    names = IDENT_PATTERN.replace("._-", "_-")
    assert f'regex("{names}", p)' in plants["validation"][0]["condition"]
    lines = root.named("variable")["production_lines"]
    assert f'regex("{names}", l)' in lines["validation"][0]["condition"]
    for c in map(chr, range(32, 127)):
        if re.fullmatch(names, f"a{c}"):
            assert re.fullmatch(IDENT_PATTERN, f"a{c}") and re.fullmatch(THING_GROUP_NAME, f"a{c}"), c
    # every plant's line has a group of its own, named after both, so two plants' line-1 never share a group
    group = root.resources("aws_iot_thing_group")[("aws_iot_thing_group", "line")]
    assert group["for_each"] == "${local.plant_lines}"
    assert group["name"] == "${each.value.group}"
    pairs = root.locals()["plant_lines"]
    assert pairs.startswith("${{for pair in setproduct(var.plants, var.production_lines) :")
    assert '"${pair[0]}/${pair[1]}" =>' in pairs
    assert 'group = "${var.project_name}-line-${pair[0]}-${pair[1]}"' in pairs
    # the job knows the same plants and lines, and a plant's line's target is that group
    assert env["PLANTWATCH_LINES"] == '${join(",", var.production_lines)}'
    prefix = "${local.iot_arn}:thinggroup/"
    template = env["PLANTWATCH_THING_GROUP_ARN_TEMPLATE"]
    assert template == prefix + "${var.project_name}-line-{plant}-{line}"
    # its role may deploy to the line groups by their name prefix, which the parent group of every gateway
    # (<project>-plant) does not share
    [targets] = [s for s in statements(_policy(root, body)) if "iot:CreateJob" in s["actions"]]
    assert targets["resources"] == [prefix + "${var.project_name}-line-*", "${local.iot_arn}:job/*"]
    assert not root.resources("aws_iot_thing_group")[("aws_iot_thing_group", "plant")]["name"].startswith(
        "${var.project_name}-line-"
    )
    # what a run could not retrain goes to the function's own dead-letter queue, whose depth pages
    queue = "aws_sqs_queue.retrain_failures"
    assert env["PLANTWATCH_FAILURE_QUEUE_URL"] == f"${{{queue}.url}}"
    assert body["dead_letter_target_arn"] == f"${{{queue}.arn}}"
    assert f"${{{queue}.name}}" in root.locals()["failure_queues"].values()
    sends = [s for s in statements(_policy(root, body)) if "sqs:SendMessage" in s["actions"]]
    assert [s["resources"] for s in sends] == [[f"${{{queue}.arn}}"]]


def test_the_default_gateways_line_has_a_thing_group_by_default(root: Config) -> None:
    import yaml

    recipe = yaml.safe_load((REPO / "edge" / "components" / "com.plantwatch.Gateway" / "recipe.yaml").read_text())
    gateway = recipe["ComponentConfiguration"]["DefaultConfiguration"]["gateway"]
    lines = {source["line"] for source in gateway["sources"] if "line" in source}
    assert lines
    assert lines <= set(root.named("variable")["production_lines"]["default"])
    assert gateway["plant"] in root.named("variable")["plants"]["default"]
