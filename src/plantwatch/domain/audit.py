"""The append-only, hash-chained audit log: each entry's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

import msgspec

GENESIS: Final = "0" * 64


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Who did what to which alert, and when (epoch ms)."""

    seq: int
    at_ms: int
    actor: str
    action: str
    plant: str
    alert_id: str
    note: str = ""


def entry_hash(entry: AuditEntry, prev_hash: str) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    body = msgspec.json.encode(msgspec.structs.asdict(entry) | {"prev_hash": prev_hash}, order="sorted")
    return hashlib.sha256(body).hexdigest()


def first_break(chain: Iterable[tuple[AuditEntry, str, str]]) -> int | None:
    """The seq of the first entry whose (prev_hash, hash) does not follow from the entries before it, or None."""
    prev = GENESIS
    for entry, prev_hash, digest in chain:
        if prev_hash != prev or entry_hash(entry, prev_hash) != digest:
            return entry.seq
        prev = digest
    return None
