"""The stream-processor Lambda's logic: Kinesis event in, partial batch response out (powertools).

The handler runs :class:`~plantwatch.services.stream_processing.StreamProcessor` over all records of the
event, then lets powertools' Kinesis batch processor build ``batchItemFailures`` from the first record not
fully written, so Lambda resumes exactly there. The local platform calls the same handler with
Kinesis-shaped events built from its local stream (:func:`kinesis_event`).
"""

from __future__ import annotations

import base64
import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamEvent, KinesisStreamRecord

from plantwatch.adapters.clock import SystemClock
from plantwatch.cloud.settings import StreamSettings
from plantwatch.contract.legacy import LegacyDefaults
from plantwatch.ports import Archive, Clock, GatewayRegistry, Sink, StreamRecord
from plantwatch.services.alert_ingest import AlertIngest
from plantwatch.services.drift_reports import DriftConfig, DriftIngest
from plantwatch.services.stream_processing import ProcessReport, StreamProcessor

log = logging.getLogger(__name__)
LOCAL_STREAM_ARN = "arn:aws:kinesis:local:000000000000:stream/plantwatch-local"


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is processed.

    Processing allocates a few container objects per reading and frees them by reference counting; with
    the collector running, its generation scans cost 3-4 times the processing itself. Cycles made meanwhile
    are collected when it resumes.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class RetryLater(Exception):  # noqa: N818 - reads as what it tells Lambda
    """A record that was not fully written and must be delivered again."""


def stream_record(record: KinesisStreamRecord) -> StreamRecord:
    """A Kinesis record as the processor's StreamRecord; the partition key is the MQTT topic when it is one."""
    payload = record.kinesis
    key = payload.partition_key
    return StreamRecord(
        record_id=payload.sequence_number,
        data=payload.data_as_bytes(),
        arrival_ms=int(payload.approximate_arrival_timestamp * 1000),
        topic=key if "/" in key else None,
    )


def kinesis_event(records: Sequence[StreamRecord], *, stream_arn: str = LOCAL_STREAM_ARN) -> dict[str, Any]:
    """A Kinesis event as Lambda delivers it, carrying ``records`` (used by the local platform and tests)."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.topic or "stream",
                    "sequenceNumber": r.record_id,
                    "data": base64.b64encode(r.data).decode("ascii"),
                    "approximateArrivalTimestamp": r.arrival_ms / 1000,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{r.record_id}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/plantwatch-local",
                "awsRegion": "local",
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


class StreamHandler:
    """Processes one Kinesis event and answers with the records Lambda must deliver again."""

    def __init__(
        self,
        processor: StreamProcessor,
        *,
        on_report: Callable[[ProcessReport], None] | None = None,
    ) -> None:
        self.processor = processor
        self.on_report = on_report
        self.batch = BatchProcessor(event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False)

    def handle(self, event: dict[str, Any], context: Any = None) -> PartialItemFailureResponse:
        """Process every record of ``event``; the response lists the first record not fully written onwards."""
        records = [stream_record(r) for r in KinesisStreamEvent(event).records]
        ids = [r.record_id for r in records]
        with gc_paused():
            report = self.processor.process(records)
        retry = set(ids[ids.index(report.failed_from) :]) if report.failed_from is not None else set()

        def record_handler(record: KinesisStreamRecord) -> None:
            if record.kinesis.sequence_number in retry:
                raise RetryLater(f"record {record.kinesis.sequence_number} was not fully written")

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=self.batch, context=context
        )
        log.info(
            "processed %d records: %d readings in, %d written, %d duplicate batches, %d quarantined, %d retried",
            report.records,
            report.readings_in,
            report.written,
            report.duplicate_batches,
            report.quarantined,
            report.retried,
            extra={"report": msgspec.to_builtins(report)},
        )
        if self.on_report is not None:
            self.on_report(report)
        return response


def build_processor(settings: StreamSettings, *, clock: Clock | None = None) -> StreamProcessor:
    """The composition root: sink, archive and alert store chosen from settings (boto3 is imported only when used)."""
    clock = clock or SystemClock()
    archive: Archive
    if settings.archive_url.startswith("s3://"):
        from plantwatch.adapters.s3_archive import S3Archive

        archive = S3Archive(settings.archive_url, clock=clock)
    else:
        from pathlib import Path

        from plantwatch.adapters.fs_archive import FilesystemArchive

        archive = FilesystemArchive(Path(settings.archive_url), clock=clock)
    sink: Sink
    if settings.sink == "duckdb":
        from plantwatch.adapters.duckdb_store import DuckDBStore

        sink = DuckDBStore(settings.duckdb_path)
    else:
        import boto3
        from botocore.config import Config

        from plantwatch.adapters.timestream import TimestreamSink

        # an explicit endpoint (moto, LocalStack, a VPC endpoint) turns boto3's endpoint discovery off
        endpoint = os.environ.get("AWS_ENDPOINT_URL_TIMESTREAM_WRITE") or os.environ.get("AWS_ENDPOINT_URL")
        client = boto3.client(
            "timestream-write", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1})
        )
        sink = TimestreamSink(
            client,
            database=settings.timestream_database,
            table=settings.timestream_table,
            clock=clock,
            memory_retention_ms=settings.memory_retention_hours * 3600 * 1000,
            magnetic_writes=settings.magnetic_writes,
            magnetic_retention_ms=settings.magnetic_retention_days * 86_400_000,
        )
    registry: GatewayRegistry | None = None
    if settings.gateway_registry == "iot":
        from plantwatch.adapters.iot_registry import connect_iot_registry

        registry = connect_iot_registry(endpoint_url=settings.iot_endpoint_url or None)
    alerts = None
    if settings.alerts_table:
        from plantwatch.adapters.dynamo_alert_writer import connect_alert_writer

        store = connect_alert_writer(alerts_table=settings.alerts_table, retention_days=settings.alert_retention_days)
        alerts = AlertIngest(store=store, sink=sink, archive=archive, clock=clock, registry=registry)
    return StreamProcessor(
        sink=sink,
        archive=archive,
        clock=clock,
        legacy_defaults=LegacyDefaults(plant=settings.legacy_plant),
        alerts=alerts,
        summaries=_drift_ingest(settings, sink=sink, archive=archive, clock=clock, registry=registry),
        registry=registry,
    )


def _drift_ingest(
    settings: StreamSettings, *, sink: Sink, archive: Archive, clock: Clock, registry: GatewayRegistry | None
) -> DriftIngest | None:
    """Score summaries into DynamoDB, drift asking the retrain Lambda (None without ``PLANTWATCH_DRIFT_TABLE``)."""
    if not settings.drift_table:
        return None
    import boto3

    from plantwatch.adapters.dynamo_drift_writer import DynamoDBDrift
    from plantwatch.adapters.lambda_retrain import LambdaRetrainTrigger

    trigger = (
        LambdaRetrainTrigger(boto3.client("lambda"), settings.retrain_function) if settings.retrain_function else None
    )
    return DriftIngest(
        store=DynamoDBDrift(boto3.client("dynamodb"), settings.drift_table),
        sink=sink,
        archive=archive,
        clock=clock,
        config=DriftConfig(threshold=settings.drift_psi_threshold),
        on_drift=trigger,
        registry=registry,
    )
