"""Object stores for the model registry: a local folder, or an S3 prefix (boto3), with the same keys.

Both offer a conditional write (:meth:`put_if`), which the registry uses for ``champion.json``: on S3 PutObject
with If-Match (or If-None-Match for a new key), locally a write under an exclusive lock on a sidecar file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

#: S3's answers to a conditional write whose condition no longer holds: the tag differs (412), another
#: conditional write to the key is in flight (409), or the key is gone (404).
_CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"}
#: Local files that are not keys: temporary files of a write, and the locks of conditional writes.
_NOT_KEYS = (".tmp-", ".lock-")


#: S3 GETs a reader has in flight at once (``archive_reader``'s pool of threads).
READ_WORKERS = 16


def s3_client_config() -> Any:
    """botocore configuration for an S3 client shared by :data:`READ_WORKERS` threads: a connection each
    (botocore keeps 10 by default, and a pool that is too small discards a connection after every GET)."""
    from botocore.config import Config

    return Config(max_pool_connections=READ_WORKERS + 4)


class LocalObjectStore:
    """Keys as files under ``root`` (written via a temporary file and an atomic rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the store root")
        return path

    def put(self, key: str, data: bytes) -> None:
        """Write (or replace) ``key`` atomically."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The file's bytes and their SHA-256 (the tag :meth:`put_if` compares), or None."""
        data = self.get(key)
        return None if data is None else (data, hashlib.sha256(data).hexdigest())

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        """Write ``key`` only if its bytes still have ``tag`` (None: only if it is absent), holding an exclusive
        lock on ``.lock-<file>`` beside it, which every conditional writer of the key takes (POSIX flock)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with (path.parent / f".lock-{path.name}").open("ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            current = self.get_tagged(key)
            if (None if current is None else current[1]) != tag:
                return False
            self.put(key, data)
            return True

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted (temporary and lock files excluded)."""
        # walk only the deepest folder the prefix names (an archive's day and plant, not every day's files)
        top = self.root / prefix.rpartition("/")[0]
        if not top.is_dir() or not top.resolve().is_relative_to(self.root.resolve()):
            return []
        keys = []
        for dirpath, _, files in os.walk(top):
            for name in files:
                if name.startswith(_NOT_KEYS):
                    continue
                key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)


class S3ObjectStore:
    """Keys under ``s3://bucket/prefix/``; ``client`` is a boto3 S3 client (honours AWS_ENDPOINT_URL)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def put(self, key: str, data: bytes) -> None:
        """Write (or replace) ``key``."""
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        tagged = self.get_tagged(key)
        return None if tagged is None else tagged[0]

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when it does not exist."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        return response["Body"].read(), str(response["ETag"])

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        """PutObject with If-Match: ``tag`` (None: If-None-Match: *); False when S3 refuses the condition."""
        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, **condition)
        except self.client.exceptions.ClientError as exc:  # botocore's, without importing it for local stores
            if str(exc.response.get("Error", {}).get("Code")) in _CONDITION_FAILED:
                return False
            raise
        return True

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (relative to the store's prefix), sorted."""
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        return sorted(keys)
