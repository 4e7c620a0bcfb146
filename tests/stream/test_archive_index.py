"""The archive's index of what it holds: compact ranges, and a cold start that reads only the manifest's tail."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from stream_support import T0, FixedClock, scored_readings

from plantwatch.adapters.archive import ComplianceArchive
from plantwatch.adapters.archive_index import ArchivedIndex
from plantwatch.adapters.archive_manifest import CHECKPOINT_EVERY, last_seq, verify
from plantwatch.contract.batch import SCHEMA_VERSION, ScoredBatch
from plantwatch.domain.thresholds import THRESHOLD_MODEL


class CountingStore:
    """An in-memory object store that counts reads."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.gets = 0
        self.lists = 0

    def put_new(self, key: str, data: bytes) -> bool:
        """Create if absent."""
        if key in self.objects:
            return False
        self.objects[key] = data
        return True

    def get(self, key: str) -> bytes | None:
        """Read, counted."""
        self.gets += 1
        return self.objects.get(key)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """List in key order, counted."""
        self.lists += 1
        for key in sorted(self.objects):
            if key.startswith(prefix) and (start_after is None or key > start_after):
                yield key, len(self.objects[key])

    def describe(self) -> str:
        """Name."""
        return "memory"


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(
        st.one_of(
            st.builds(lambda g, s: f"gw-{g}:{s}", st.integers(0, 3), st.integers(1, 60)),
            st.builds(lambda s: f"raw.t-1:{s}", st.integers(0, 10**13)),
            st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
        ),
        max_size=200,
    ),
    probes=st.lists(st.builds(lambda g, s: f"gw-{g}:{s}", st.integers(0, 3), st.integers(0, 61)), max_size=50),
)
def test_index_membership_equals_a_set_and_survives_a_checkpoint(keys: list[str], probes: list[str]) -> None:
    index = ArchivedIndex()
    index.update(keys)
    restored = ArchivedIndex(index.checkpoint())
    for key in [*keys, *probes]:
        assert (key in index) == (key in set(keys)) == (key in restored)


def test_consecutive_batches_collapse_to_one_range() -> None:
    index = ArchivedIndex()
    index.update(f"gw-1:{seq}" for seq in [*range(500, 1000), *range(1, 500)])
    assert index.checkpoint().batches == {"gw-1": [(1, 999)]}


def batch(seq: int) -> ScoredBatch:
    """A one-reading batch."""
    return ScoredBatch(
        schema_version=SCHEMA_VERSION,
        gateway_id="gw-1",
        seq=seq,
        plant="plant-1",
        model=THRESHOLD_MODEL,
        readings=tuple(scored_readings("line-1", 1, T0 + seq * 1000)),
    )


def test_a_cold_writer_reads_only_back_to_the_newest_checkpoint() -> None:
    store, clock = CountingStore(), FixedClock(T0 + 86_400_000)
    writer = ComplianceArchive(store, clock=clock)
    entries = 2 * CHECKPOINT_EVERY + 50
    for seq in range(1, entries + 1):
        writer.put_batches([batch(seq)])
    assert last_seq(store) == entries
    store.gets = store.lists = 0
    cold = ComplianceArchive(store, clock=clock)
    assert cold.unarchived([f"gw-1:{seq}" for seq in range(1, entries + 2)]) == {f"gw-1:{entries + 1}"}
    assert store.gets == 51  # entries 250 back to the checkpoint in entry 200
    assert store.lists < 25
    # and what it writes next still chains on
    cold.put_batches([batch(1), batch(entries + 1)])
    assert last_seq(store) == entries + 1
    assert verify(store).ok
