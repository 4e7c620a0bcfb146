"""The local platform's consumer runs the Lambda handler over its SQLite stream, committing what was written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
from stream_support import batch_records

from plantwatch.adapters.archive_manifest import verify
from plantwatch.adapters.fs_archive import FilesystemObjectStore
from plantwatch.contract.batch import ScoredBatch
from plantwatch.local.platform import CONSUMER, LocalPlatform, PlatformOptions
from plantwatch.ports import WriteOutcome


class Flaky:
    """Wraps the platform's sink: the first write leaves batches from the third on unwritten."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.failed = False

    def write(self, batches: Sequence[ScoredBatch]) -> WriteOutcome:
        """Write all, but report the tail incomplete once."""
        if self.failed:
            return self.inner.write(batches)  # type: ignore[attr-defined, no-any-return]
        outcome: WriteOutcome = self.inner.write(batches[:2])  # type: ignore[attr-defined]
        self.failed = True
        return msgspec.structs.replace(outcome, incomplete=tuple(b.key for b in batches[2:]))

    def record_quarantine(self, entries: object) -> None:
        """Delegate."""
        self.inner.record_quarantine(entries)  # type: ignore[attr-defined]


def test_consumer_commits_up_to_the_first_record_not_written_and_resumes_there(tmp_path: Path) -> None:
    platform = LocalPlatform(PlatformOptions(data_dir=tmp_path, port=1, mqtt_port=1), out=lambda line: None)
    try:
        platform.processor.sink = Flaky(platform.store)
        records = batch_records("gw-1", "line-1", batches=5, per_batch=20, start_ms=platform.clock.now_ms() - 60_000)
        for record in records:
            platform.stream.append(record.topic, record.data, record.arrival_ms)
        with pytest.raises(RuntimeError, match="3 stream records were not fully written"):
            platform._consume()
        assert platform.stream.backlog(CONSUMER) == 3
        assert platform._consume() is True
        assert platform.stream.backlog(CONSUMER) == 0
        count = platform.store.cursor().execute("SELECT count(*), count(DISTINCT batch_key) FROM readings").fetchall()
        assert count == [(100, 5)]
        assert platform.totals.written == 100
        assert platform.totals.retried == 3
    finally:
        platform.archive.close()
        platform.store.close()
        platform.stream.close()
    assert verify(FilesystemObjectStore(tmp_path / "archive")).ok
