"""Which batches and quarantine entries the archive holds, compactly: sequence-number ranges per gateway.

Batch keys are ``gateway_id:seq`` and a gateway numbers its batches consecutively, so everything archived from
one gateway collapses to a few ranges. Other members (quarantine ids, legacy readings' keys, which do not form
ranges) are kept as a bounded ordered set: duplicates older than the newest ``max_others`` can be archived again.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterable
from typing import Final

import msgspec

MAX_OTHERS: Final = 20_000


class IndexCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The whole index at one manifest entry: gateway -> [[first seq, last seq], ...], and recent other members."""

    batches: dict[str, list[tuple[int, int]]]
    others: tuple[str, ...]


class ArchivedIndex:
    """A set of archive members that stays small as gateways' sequence numbers grow."""

    def __init__(self, checkpoint: IndexCheckpoint | None = None, *, max_others: int = MAX_OTHERS) -> None:
        self.max_others = max_others
        self._ranges: dict[str, tuple[list[int], list[int]]] = {}
        self._others: dict[str, None] = {}
        if checkpoint is not None:
            for gateway, ranges in checkpoint.batches.items():
                self._ranges[gateway] = ([lo for lo, _ in ranges], [hi for _, hi in ranges])
            self._others = dict.fromkeys(checkpoint.others)

    @staticmethod
    def _split(key: str) -> tuple[str, int] | None:
        gateway, sep, seq = key.rpartition(":")
        if sep and seq.isdigit() and not gateway.startswith("raw."):
            return gateway, int(seq)
        return None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        split = self._split(key)
        if split is None:
            return key in self._others
        ranges = self._ranges.get(split[0])
        if ranges is None:
            return False
        los, his = ranges
        i = bisect.bisect_right(los, split[1])
        return i > 0 and his[i - 1] >= split[1]

    def add(self, key: str) -> None:
        """Record one member."""
        split = self._split(key)
        if split is None:
            self._others[key] = None
            if len(self._others) > self.max_others:
                del self._others[next(iter(self._others))]
            return
        gateway, seq = split
        los, his = self._ranges.setdefault(gateway, ([], []))
        i = bisect.bisect_right(los, seq)
        if i and his[i - 1] >= seq:
            return
        joins_left = bool(i) and his[i - 1] == seq - 1
        joins_right = i < len(los) and los[i] == seq + 1
        if joins_left and joins_right:
            his[i - 1] = his[i]
            del los[i], his[i]
        elif joins_left:
            his[i - 1] = seq
        elif joins_right:
            los[i] = seq
        else:
            los.insert(i, seq)
            his.insert(i, seq)

    def update(self, keys: Iterable[str]) -> None:
        """Record many members."""
        for key in keys:
            self.add(key)

    def checkpoint(self, extra: Iterable[str] = ()) -> IndexCheckpoint:
        """The index (plus ``extra`` members) as stored in a manifest entry; this index is not changed."""
        view = self
        extra = list(extra)
        if extra:
            view = copy.deepcopy(self)
            view.update(extra)
        return IndexCheckpoint(
            batches={g: list(zip(los, his, strict=True)) for g, (los, his) in sorted(view._ranges.items())},
            others=tuple(view._others),
        )
