"""The compliance archive in S3: objects created with If-None-Match, so nothing is ever overwritten.

The bucket is expected to have versioning, Object Lock in COMPLIANCE mode with a default retention and SSE-KMS
default encryption (see cloud/terraform); every PUT carries a SHA-256 checksum (computed by botocore) that S3 checks.
boto3 calls made here: PutObject, GetObject, ListObjectsV2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import ClientError

from plantwatch.adapters.archive import ComplianceArchive
from plantwatch.ports import Clock

_EXISTS = {"PreconditionFailed", "ConditionalRequestConflict", "412"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; the prefix is '' or ends with '/'."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an S3 URL: {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"S3 URL without a bucket: {url!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3ObjectStore:
    """Objects under ``s3://bucket/prefix``."""

    def __init__(self, url: str, *, client: Any = None) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.client = client or boto3.client("s3")

    def put_new(self, key: str, data: bytes) -> bool:
        """PutObject with If-None-Match: *; False when the key exists."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                ChecksumAlgorithm="SHA256",  # S3 checks the bytes; Object Lock buckets require a checksum
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _EXISTS:
                return False
            raise
        return True

    def get(self, key: str) -> bytes | None:
        """GetObject's body, or None when there is no such key."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        body: bytes = response["Body"].read()
        return body

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """(key, size) under ``prefix`` after ``start_after`` (ListObjectsV2 pages), in key order."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after is not None:
            kwargs["StartAfter"] = self.prefix + start_after
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :], int(item["Size"])

    def describe(self) -> str:
        """The S3 URL."""
        return self.url


class S3Archive(ComplianceArchive):
    """The compliance archive under an S3 URL."""

    def __init__(self, url: str, *, clock: Clock, client: Any = None) -> None:
        super().__init__(S3ObjectStore(url, client=client), clock=clock)
