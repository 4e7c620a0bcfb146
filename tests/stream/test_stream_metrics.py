"""The stream processor's CloudWatch metrics are the ones Terraform's alarms and dashboard watch: the handler,
run with the environment Terraform gives it, emits (EMF on stdout) each watched metric in the watched namespace
with the watched dimensions, and a poison record makes the quarantine alarm's statistic cross its threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from stream_support import batch_records, context, load_app
from tests.infra.infra_hcl import TERRAFORM, Config, reference

from plantwatch.cloud.stream_handler import kinesis_event
from plantwatch.ports import StreamRecord


def _terraform_value(value: str, config: Config) -> str:
    """A literal, or a ``local.<name>`` reference resolved (the only expressions these settings use)."""
    expression = reference(value)
    if expression is None:
        return value
    assert expression.startswith("local."), f"unexpected expression {value}"
    resolved: str = config.locals()[expression.removeprefix("local.")]
    return resolved


def _emitted(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines the handler printed."""
    documents = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def _watched(config: Config) -> list[tuple[str, str, dict[str, str], float]]:
    """(namespace, metric, dimensions, threshold) of each alarm on our own namespace, and the dashboard's."""
    namespace = config.locals()["metrics_namespace"]
    watched = []
    for body in config.resources("aws_cloudwatch_metric_alarm").values():
        if _terraform_value(body["namespace"], config) == namespace:
            watched.append((namespace, body["metric_name"], dict(body["dimensions"]), float(body["threshold"])))
    dashboard = (TERRAFORM / "monitoring.tf").read_text()
    for metric, dimension, value in re.findall(r'\[local\.metrics_namespace, "(\w+)", "(\w+)", "([\w-]+)"', dashboard):
        watched.append((namespace, metric, {dimension: value}, 0.0))
    return watched


def test_alarms_watch_metrics_the_handler_emits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the handler with the POWERTOOLS_* environment of the Terraform module, and what Terraform watches
    config = Config.read(TERRAFORM)
    environment = config.modules_from("./modules/lambda_function")["stream_processor"]["environment"]
    powertools = {
        name: _terraform_value(environment[name], config)
        for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE")
    }
    app = load_app(monkeypatch, tmp_path, environment=powertools)
    watched = _watched(config)
    assert any(metric == "Quarantined" for _, metric, _, _ in watched), "the quarantine alarm is gone"
    # WHEN it handles a good batch and a poison record
    good = batch_records("gw-1", "line-1", batches=1, per_batch=5)
    poison = StreamRecord(record_id=f"{99:020d}", data=b"not a batch", arrival_ms=0, topic=good[0].topic)
    capsys.readouterr()
    assert app.handler(kinesis_event([*good, poison]), context()) == {"batchItemFailures": []}
    # THEN every watched metric is emitted in the watched namespace and dimensions, and the quarantine alarm's
    # Sum crosses its threshold
    documents = _emitted(capsys.readouterr().out)
    assert documents, "the handler printed no EMF"
    for namespace, metric, dimensions, threshold in watched:
        found = [
            d
            for d in documents
            for block in d["_aws"]["CloudWatchMetrics"]
            if block["Namespace"] == namespace
            and metric in {m["Name"] for m in block["Metrics"]}
            and any(set(dimensions) == set(group) for group in block["Dimensions"])
            and all(d.get(k) == v for k, v in dimensions.items())
        ]
        assert found, f"{namespace}/{metric} {dimensions} is watched but never emitted"
        if metric == "Quarantined":
            values = [v for d in found for v in (d[metric] if isinstance(d[metric], list) else [d[metric]])]
            assert sum(float(v) for v in values) > threshold
