"""Open an archive's object store from ``PLANTWATCH_ARCHIVE_URL``-style locations: ``s3://…`` or a directory."""

from __future__ import annotations

from pathlib import Path

from plantwatch.adapters.archive_manifest import ObjectStore
from plantwatch.adapters.fs_archive import FilesystemObjectStore


def open_store(location: str) -> ObjectStore:
    """The object store at ``location`` (an S3 URL needs boto3, imported only then)."""
    if location.startswith("s3://"):
        from plantwatch.adapters.s3_archive import S3ObjectStore

        return S3ObjectStore(location)
    if "://" in location:
        raise ValueError(f"unsupported archive location {location!r}: use s3://bucket/prefix or a directory")
    return FilesystemObjectStore(Path(location))
