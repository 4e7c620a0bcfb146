"""Against a moto server: records put to a real Kinesis API, handled into an Object Lock archive in S3."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from stream_support import batch_records, context, load_app

from plantwatch.cli import main
from plantwatch.ports import StreamRecord

STREAM = "smart-manufacturing-iot-analytics-platform-sensor-data-stream"


def locked_bucket(name: str) -> Any:
    """A bucket as Terraform makes it: versioning, Object Lock COMPLIANCE with default retention, SSE-KMS."""
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        ObjectLockEnabledForBucket=True,
    )
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    kms = boto3.client("kms")
    key_id = kms.create_key(Description="plantwatch archive")["KeyMetadata"]["KeyId"]
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}}]
        },
    )
    return s3


def kinesis_roundtrip(name: str, records: list[StreamRecord]) -> dict[str, Any]:
    """Put records (partition key = MQTT topic, as the IoT rule sets it), read them back as Lambda's event."""
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    put = kinesis.put_records(
        StreamName=name, Records=[{"Data": r.data, "PartitionKey": r.topic or "stream"} for r in records]
    )
    assert put["FailedRecordCount"] == 0
    description = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    shard = description["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    got = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    assert len(got) == len(records)
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/plantwatch-stream-processor",
                "awsRegion": "eu-west-1",
                "eventSourceARN": description["StreamARN"],
            }
            for r in got
        ]
    }


def test_kinesis_to_locked_s3_archive_exactly_once(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = locked_bucket("plantwatch-archive-e2e")
    records = batch_records("gw-1", "line-1", batches=4, per_batch=50)
    # GIVEN a producer retry that put two records twice (new sequence numbers, same payloads)
    event = kinesis_roundtrip("stream-e2e", [*records, records[0], records[2]])
    app = load_app(monkeypatch, tmp_path, archive_url="s3://plantwatch-archive-e2e/archive")
    # WHEN the handler runs (and Lambda delivers the whole event again)
    assert app.handler(event, context()) == {"batchItemFailures": []}
    assert app.handler(event, context()) == {"batchItemFailures": []}
    # THEN one row per reading and one archive object, and verify passes against S3
    con = app.stream.processor.sink.cursor()
    assert con.execute("SELECT count(*), count(DISTINCT (sensor_id, ts)) FROM readings").fetchall() == [(200, 200)]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="plantwatch-archive-e2e")["Contents"]]
    assert len([k for k in keys if k.startswith("archive/batches/")]) == 1
    assert len([k for k in keys if k.startswith("archive/_manifest/")]) == 1
    capsys.readouterr()
    assert main(["archive", "verify", "s3://plantwatch-archive-e2e/archive"]) == 0
    assert capsys.readouterr().out.strip().endswith("1 manifest entries, 1 objects: intact")
    # AND the archived object is locked in COMPLIANCE mode: its version cannot be deleted
    data_key = next(k for k in keys if k.startswith("archive/batches/"))
    head = s3.head_object(Bucket="plantwatch-archive-e2e", Key=data_key)
    version = head["VersionId"]
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError):
        s3.delete_object(Bucket="plantwatch-archive-e2e", Key=data_key, VersionId=version)
    assert s3.head_object(Bucket="plantwatch-archive-e2e", Key=data_key, VersionId=version)["ContentLength"] > 0


@pytest.mark.xfail(
    strict=True,
    reason="moto 5.2.5 does not enforce COMPLIANCE on PutObjectRetention (models.py just overwrites it); real S3 "
    "refuses to shorten it with AccessDenied. Strict, so this starts failing the day moto enforces it.",
)
def test_compliance_retention_cannot_be_shortened(aws: str) -> None:
    s3 = locked_bucket("plantwatch-archive-retention")
    s3.put_object(Bucket="plantwatch-archive-retention", Key="k", Body=b"x", ChecksumAlgorithm="SHA256")
    version = s3.head_object(Bucket="plantwatch-archive-retention", Key="k")["VersionId"]
    with pytest.raises(ClientError):
        s3.put_object_retention(
            Bucket="plantwatch-archive-retention",
            Key="k",
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)},
        )


def test_verify_against_s3_names_overwritten_hidden_and_added_objects(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = locked_bucket("plantwatch-archive-tamper")
    event = kinesis_roundtrip(
        "stream-tamper",
        [
            *batch_records("gw-1", "line-1", batches=2, per_batch=30),
            *batch_records("gw-2", "line-2", batches=2, per_batch=30),
        ],
    )
    app = load_app(monkeypatch, tmp_path, archive_url="s3://plantwatch-archive-tamper/a")
    assert app.handler(event, context()) == {"batchItemFailures": []}
    line1, line2 = sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket="plantwatch-archive-tamper", Prefix="a/batches/")["Contents"]
    )
    # a new version over one object, a delete marker over the other, and a forged extra object: all allowed by
    # Object Lock (the locked versions stay), all visible to verify
    s3.put_object(Bucket="plantwatch-archive-tamper", Key=line1, Body=b"forged")
    s3.delete_object(Bucket="plantwatch-archive-tamper", Key=line2)
    s3.put_object(Bucket="plantwatch-archive-tamper", Key="a/batches/extra.parquet", Body=b"x")
    capsys.readouterr()
    assert main(["archive", "verify", "s3://plantwatch-archive-tamper/a"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.split(" (")[0] for line in out[:-1]) == sorted(
        [f"truncated: {line1[2:]}", f"missing: {line2[2:]}", "extra: batches/extra.parquet"]
    )


def test_report_reads_the_s3_archive(aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    locked_bucket("plantwatch-archive-report")
    event = kinesis_roundtrip("stream-report", batch_records("gw-1", "line-1", batches=3, per_batch=60))
    app = load_app(monkeypatch, tmp_path, archive_url="s3://plantwatch-archive-report/r")
    assert app.handler(event, context()) == {"batchItemFailures": []}
    out = tmp_path / "report"
    argv = ["report", "--plant", "plant-1", "--from", "2026-01-01", "--to", "2026-01-01"]
    assert main([*argv, "--archive", "s3://plantwatch-archive-report/r", "--out", str(out)]) == 0
    completeness = (out / "completeness.csv").read_text().splitlines()
    assert len(completeness) == 1 + 6
    assert all(",30," in line for line in completeness[1:])  # 180 readings over 6 sensors
    assert "<span class='ok'>intact</span>" in (out / "report.html").read_text()


def test_timestream_requests_pass_botocore_validation_against_moto(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # moto's Timestream stores nothing (field facts), but botocore validates every request against the
    # service model before sending it: this checks the shape of the requests the sink builds.
    write = boto3.client("timestream-write", endpoint_url=aws)  # explicit: no endpoint discovery
    write.create_database(DatabaseName="smart_manufacturing_iot_analytics_platform_sensor_database")
    write.create_table(
        DatabaseName="smart_manufacturing_iot_analytics_platform_sensor_database", TableName="sensor_readings"
    )
    event = kinesis_roundtrip("stream-timestream", batch_records("gw-1", "line-1", batches=3, per_batch=120))
    app = load_app(monkeypatch, tmp_path, sink="timestream")
    assert app.handler(event, context()) == {"batchItemFailures": []}
    assert app.stream.processor.sink.calls >= 4  # 360 readings in 4 requests, plus their alerts
