"""The archive's hash-chained manifest and its verification, over any object store (filesystem or S3).

Every write to the archive appends one manifest entry, ``_manifest/<seq, 12 digits>.json``, created only if
absent (so concurrent writers cannot fork the chain). An entry lists the objects it added with their SHA-256,
size, row count and the batch keys (or quarantine ids) inside, the SHA-256 of the entry before it, and its
own SHA-256 over everything else. Verification recomputes all of it and names every object that differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Final, Literal, Protocol

import msgspec

from plantwatch.adapters.archive_index import IndexCheckpoint

MANIFEST_PREFIX: Final = "_manifest/"
#: every this many entries, one carries the whole index, so a writer starting cold reads at most this many
CHECKPOINT_EVERY: Final = 100
GENESIS: Final = "0" * 64


class ObjectStore(Protocol):
    """Immutable objects by key: create-if-absent, read, list."""

    def put_new(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data``; False (and no change) when the key already exists."""
        ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        ...

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under ``prefix`` after ``start_after``, in key order."""
        ...

    def describe(self) -> str:
        """Where the store is, for messages."""
        ...


class ManifestObject(msgspec.Struct, frozen=True, kw_only=True):
    """One archived object as the manifest vouches for it."""

    key: str
    sha256: str
    bytes: int
    rows: int
    members: tuple[str, ...]


class ManifestEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One link of the chain: the objects one write added (every ``CHECKPOINT_EVERY``-th also the whole index)."""

    seq: int
    prev: str
    written_at_ms: int
    objects: tuple[ManifestObject, ...]
    checkpoint: IndexCheckpoint | None = None
    hash: str = ""


_encoder = msgspec.json.Encoder()


def manifest_key(seq: int) -> str:
    """The key of manifest entry ``seq``."""
    return f"{MANIFEST_PREFIX}{seq:012d}.json"


def manifest_seq(key: str) -> int | None:
    """The sequence number a manifest key names, or None if it names none."""
    digits = key[len(MANIFEST_PREFIX) :].removesuffix(".json")
    return int(digits) if key.startswith(MANIFEST_PREFIX) and key.endswith(".json") and digits.isdigit() else None


def last_seq(store: ObjectStore) -> int:
    """The highest manifest sequence number in ``store`` (0 if none), in about 2 log2(n) listings."""

    def beyond(seq: int) -> bool:
        first = next(iter(store.list(MANIFEST_PREFIX, start_after=manifest_key(seq))), None)
        return first is not None and manifest_seq(first[0]) is not None

    if not beyond(0):
        return 0
    low, high = 0, 1  # beyond(low) holds, beyond(high) is to be found false
    while beyond(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if beyond(middle):
            low = middle
        else:
            high = middle
    return high


def entry_hash(entry: ManifestEntry) -> str:
    """SHA-256 of an entry's canonical JSON without its own hash field."""
    return hashlib.sha256(_encoder.encode(msgspec.structs.replace(entry, hash=""))).hexdigest()


def seal(entry: ManifestEntry) -> ManifestEntry:
    """The entry with its hash filled in."""
    return msgspec.structs.replace(entry, hash=entry_hash(entry))


def encode_entry(entry: ManifestEntry) -> bytes:
    """The bytes an entry is stored as."""
    return _encoder.encode(entry)


def decode_entry(data: bytes) -> ManifestEntry:
    """Parse a stored entry (raises msgspec errors when it is not one)."""
    return msgspec.json.decode(data, type=ManifestEntry)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


Problem = Literal["altered", "truncated", "missing", "extra", "manifest altered", "manifest missing"]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One object that is not as the manifest says."""

    key: str
    problem: Problem
    detail: str


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """What verification checked and found."""

    location: str
    entries: int
    objects: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when every object is exactly as the manifest says."""
        return not self.findings


def _check_entries(store: ObjectStore, keys: list[str], findings: list[Finding]) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    expected_seq = 1
    prev_hash: str | None = GENESIS
    for key in keys:
        seq = manifest_seq(key)
        if seq is None:
            findings.append(Finding(key=key, problem="extra", detail="not a manifest entry name"))
            continue
        for gap in range(expected_seq, seq):
            findings.append(Finding(key=manifest_key(gap), problem="manifest missing", detail="the chain has a gap"))
            prev_hash = None
        expected_seq = seq + 1
        data = store.get(key)
        try:
            entry = decode_entry(data or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            findings.append(Finding(key=key, problem="manifest altered", detail=f"unreadable: {exc}"))
            prev_hash = None
            continue
        computed = entry_hash(entry)
        if computed != entry.hash or entry.seq != seq:
            findings.append(
                Finding(key=key, problem="manifest altered", detail="its SHA-256 does not match its content")
            )
        elif prev_hash is not None and entry.prev != prev_hash:
            findings.append(
                Finding(key=key, problem="manifest altered", detail="it does not link to the entry before it")
            )
        prev_hash = entry.hash if computed == entry.hash else None
        entries.append(entry)
    return entries


def verify(store: ObjectStore) -> VerifyResult:
    """Check every object and manifest entry in ``store``; each difference becomes a named finding."""
    listing = dict(store.list())
    manifest_keys = sorted(k for k in listing if k.startswith(MANIFEST_PREFIX))
    findings: list[Finding] = []
    entries = _check_entries(store, manifest_keys, findings)
    vouched: set[str] = set()
    for entry in entries:
        for obj in entry.objects:
            vouched.add(obj.key)
            size = listing.get(obj.key)
            if size is None:
                findings.append(Finding(key=obj.key, problem="missing", detail=f"listed in {manifest_key(entry.seq)}"))
                continue
            if size < obj.bytes:
                findings.append(Finding(key=obj.key, problem="truncated", detail=f"{size} of {obj.bytes} bytes"))
                continue
            data = store.get(obj.key) or b""
            if len(data) != obj.bytes or sha256_hex(data) != obj.sha256:
                findings.append(Finding(key=obj.key, problem="altered", detail="its SHA-256 differs from the manifest"))
    for key in sorted(listing):
        if key not in vouched and not key.startswith(MANIFEST_PREFIX):
            findings.append(Finding(key=key, problem="extra", detail="not listed in any manifest entry"))
    return VerifyResult(location=store.describe(), entries=len(entries), objects=len(vouched), findings=tuple(findings))
