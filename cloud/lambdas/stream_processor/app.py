"""Stream-processor Lambda: Kinesis records of gateways' batches, raw readings and alerts -> archive + sink + alerts;
score summaries -> DynamoDB drift table (and the retrain Lambda when a line drifts).

All logic lives in the plantwatch package; this file wires powertools' Logger and Metrics around it.
Configuration: environment variables only (docs/cloud.md).
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from plantwatch.cloud.settings import StreamSettings
from plantwatch.cloud.stream_handler import StreamHandler, build_processor
from plantwatch.services.stream_processing import ProcessReport

logger = Logger(service="stream-processor")
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={"plantwatch"})


def _record(report: ProcessReport) -> None:
    for name, value in (
        ("ReadingsIn", report.readings_in),
        ("ReadingsWritten", report.written),
        ("Quarantined", report.quarantined),
        ("RecordsRetried", report.retried),
        ("DuplicateBatches", report.duplicate_batches),
        ("AlertsStored", report.alerts),
        ("SummariesStored", report.summaries),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


settings = StreamSettings.from_env()
stream = StreamHandler(build_processor(settings), on_report=_record)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point (``app.handler``)."""
    return dict(stream.handle(event, context))
