"""The compliance archive on a local filesystem: the S3 layout under a root directory, objects created once.

An object is written to a temporary file, fsynced, then hard-linked to its key: the link either creates the
key with complete content or fails because the key exists, so an object is never half-written or replaced.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from plantwatch.adapters.archive import ComplianceArchive
from plantwatch.adapters.clock import SystemClock
from plantwatch.ports import Clock


class FilesystemObjectStore:
    """Objects as files under ``root``; keys are relative paths with '/' separators."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"archive key {key!r} leaves the archive root")
        return path

    def put_new(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` durably; False when it exists."""
        path = self._path(key)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """(key, size) of every file under ``prefix`` after ``start_after``, in key order."""
        top = self.root / prefix.rpartition("/")[0]  # walk only the prefix's directory
        if not top.is_dir():
            return
        keys = []
        for dirpath, _, files in os.walk(top):
            for name in files:
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append((key, full))
        for key, full in sorted(keys):
            yield key, full.stat().st_size

    def describe(self) -> str:
        """The root directory."""
        return str(self.root)


class FilesystemArchive(ComplianceArchive):
    """The compliance archive under a local directory."""

    def __init__(self, root: Path, *, clock: Clock | None = None) -> None:
        super().__init__(FilesystemObjectStore(root), clock=clock or SystemClock())
        self.root = root
