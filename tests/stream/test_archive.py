"""The compliance archive: layout, exactly-once objects, rolling, and `plantwatch archive verify` on tampering."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from stream_support import T0, FixedClock, batch_records, local_handler

from plantwatch.adapters.archive_manifest import MANIFEST_PREFIX, verify
from plantwatch.adapters.archive_staging import RollingArchive
from plantwatch.adapters.fs_archive import FilesystemArchive, FilesystemObjectStore
from plantwatch.cli import main
from plantwatch.cloud.stream_handler import kinesis_event
from plantwatch.services.stream_processing import StreamProcessor


@pytest.fixture
def archive_dir(tmp_path: Path, clock: FixedClock) -> Path:
    """An archive of two lines over three deliveries (three manifest entries)."""
    handler, _ = local_handler(tmp_path, clock)
    for first_seq in (1, 4, 7):
        records = [
            *batch_records("gw-1", "line-1", batches=3, per_batch=20, first_seq=first_seq),
            *batch_records("gw-2", "line-2", batches=3, per_batch=20, first_seq=first_seq),
        ]
        assert handler.handle(kinesis_event(records))["batchItemFailures"] == []
    return tmp_path / "archive"


def run_verify(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Exit code and output lines of `plantwatch archive verify PATH`."""
    code = main(["archive", "verify", str(path)])
    return code, capsys.readouterr().out.splitlines()


def data_objects(root: Path) -> list[Path]:
    """The Parquet objects, in key order."""
    return sorted(root.glob("batches/**/*.parquet"))


def test_layout_is_partitioned_and_queryable(archive_dir: Path) -> None:
    keys = [p.relative_to(archive_dir).as_posix() for p in data_objects(archive_dir)]
    assert len(keys) == 6  # 3 deliveries x 2 lines
    assert all(
        k.startswith(
            ("batches/date=2026-01-01/plant=plant-1/line=line-1/", "batches/date=2026-01-01/plant=plant-1/line=line-2/")
        )
        for k in keys
    )
    rows = duckdb.sql(
        f"SELECT line, count(*) FROM read_parquet('{archive_dir}/batches/**/*.parquet', hive_partitioning=true) "
        "GROUP BY line ORDER BY line"
    ).fetchall()
    assert rows == [("line-1", 180), ("line-2", 180)]


def test_intact_archive_verifies(archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_verify(archive_dir, capsys)
    assert code == 0
    assert out[-1].endswith("3 manifest entries, 6 objects: intact")


def test_flipped_byte_truncation_deletion_and_addition_are_each_named(
    archive_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flipped, truncated, deleted, *_ = data_objects(archive_dir)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-10])
    deleted.unlink()
    added = archive_dir / "batches/date=2026-01-01/plant=plant-1/line=line-1/part-forged.parquet"
    added.write_bytes(b"PAR1 not really")
    code, out = run_verify(archive_dir, capsys)
    rel = lambda p: p.relative_to(archive_dir).as_posix()  # noqa: E731
    assert code == 1
    assert sorted(line.split(" (")[0] for line in out[:-1]) == sorted(
        [f"altered: {rel(flipped)}", f"truncated: {rel(truncated)}", f"missing: {rel(deleted)}", f"extra: {rel(added)}"]
    )
    size = truncated.stat().st_size
    assert f"truncated: {rel(truncated)} ({size} of {size + 10} bytes)" in out
    assert "NOT intact: 4 problem(s)" in out[-1]


def test_edited_or_removed_manifest_entries_are_named(archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second = archive_dir / MANIFEST_PREFIX / "000000000002.json"
    entry = json.loads(second.read_text())
    entry["objects"][0]["rows"] += 1
    second.write_text(json.dumps(entry))
    code, out = run_verify(archive_dir, capsys)
    assert code == 1
    assert out[:-1] == [
        f"manifest altered: {MANIFEST_PREFIX}000000000002.json (its SHA-256 does not match its content)"
    ]
    # removing an entry breaks the chain there and leaves its objects unvouched for
    first = archive_dir / MANIFEST_PREFIX / "000000000001.json"
    listed = [o["key"] for o in json.loads(first.read_text())["objects"]]
    first.unlink()
    code, out = run_verify(archive_dir, capsys)
    assert code == 1
    assert f"manifest missing: {MANIFEST_PREFIX}000000000001.json (the chain has a gap)" in out
    assert sorted(line for line in out if line.startswith("extra:")) == sorted(
        f"extra: {key} (not listed in any manifest entry)" for key in listed
    )


def test_a_re_hashed_manifest_edit_breaks_the_link_of_the_next_entry(archive_dir: Path) -> None:
    from plantwatch.adapters.archive_manifest import decode_entry, encode_entry, seal

    path = archive_dir / MANIFEST_PREFIX / "000000000002.json"
    entry = decode_entry(path.read_bytes())
    forged = seal(type(entry)(seq=entry.seq, prev=entry.prev, written_at_ms=1, objects=entry.objects))
    path.write_bytes(encode_entry(forged))
    findings = verify(FilesystemObjectStore(archive_dir)).findings
    assert [(f.key, f.detail) for f in findings] == [
        (f"{MANIFEST_PREFIX}000000000003.json", "it does not link to the entry before it")
    ]


def test_rolling_archive_stages_durably_and_seals_few_large_objects(tmp_path: Path, clock: FixedClock) -> None:
    def rolling() -> RollingArchive:
        return RollingArchive(
            FilesystemArchive(tmp_path / "archive", clock=clock),
            tmp_path / "staging.log",
            clock=clock,
            max_age_ms=60_000,
        )

    archive = rolling()
    processor = StreamProcessor(sink=_NullSink(), archive=archive, clock=clock)
    for first_seq in range(1, 30, 3):  # ten small steps, as the local consumer makes them
        processor.process(batch_records("gw-1", "line-1", batches=3, per_batch=10, first_seq=first_seq))
    assert data_objects(tmp_path / "archive") == []  # staged, not yet sealed
    # a crash tears the last frame; restarting keeps every complete one
    with (tmp_path / "staging.log").open("ab") as f:
        f.write(b"\x00\x00\x01\x00partial")
    archive = rolling()
    processor = StreamProcessor(sink=_NullSink(), archive=archive, clock=clock)
    processor.process(batch_records("gw-1", "line-1", batches=3, per_batch=10, first_seq=1))  # duplicates
    clock.now += 61_000
    archive.roll_if_due()
    objects = data_objects(tmp_path / "archive")
    assert len(objects) == 1
    assert duckdb.sql(f"SELECT count(*), count(DISTINCT batch_key) FROM read_parquet('{objects[0]}')").fetchall() == [
        (300, 30)
    ]
    # batches already sealed are not staged again
    processor.process(batch_records("gw-1", "line-1", batches=3, per_batch=10, first_seq=1))
    archive.close()
    assert len(data_objects(tmp_path / "archive")) == 1
    assert verify(FilesystemObjectStore(tmp_path / "archive")).ok


class _NullSink:
    def write(self, batches: object) -> object:
        from plantwatch.ports import WriteOutcome

        return WriteOutcome(written=0, duplicate_batches=0)

    def record_quarantine(self, entries: object) -> None:
        return None


def test_day_partitions_follow_each_reading(tmp_path: Path, clock: FixedClock) -> None:
    clock.now = T0 + 86_400_000
    handler, _ = local_handler(tmp_path, clock)
    handler.handle(
        kinesis_event(batch_records("gw-1", "line-1", batches=1, per_batch=60, start_ms=T0 + 43_200_000 - 5000))
    )
    days = sorted({p.parent.parent.parent.name for p in data_objects(tmp_path / "archive")})
    assert days == ["date=2026-01-01", "date=2026-01-02"]


def test_verify_refuses_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "verify", str(tmp_path / "nowhere")]) == 2
    assert "no archive directory" in capsys.readouterr().err
