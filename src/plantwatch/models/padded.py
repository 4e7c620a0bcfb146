"""Isolation trees padded to full binary depth, traversed level by level for all rows and trees at once (numpy).

Every tree becomes a complete binary tree of depth ``D`` (the deepest leaf of the forest): node ``i`` has
children ``2i+1`` and ``2i+2``; a leaf shallower than ``D`` is copied into every leaf slot below it, so the
path below it may go either way. A batch of rows then walks ``D`` levels with a handful of vector operations
per level, instead of one Python call per tree.

Splits match scikit-learn exactly: inputs are cast to float32 (as ``IsolationForest.score_samples`` does) and
a row goes left when ``x <= threshold``. Because ``x`` is float32, ``x <= t`` equals ``x <= t32`` where
``t32`` is the largest float32 not above the float64 threshold ``t``, so thresholds are stored as float32.
NaN goes where the node's ``missing_go_to_left`` says, as in scikit-learn.
"""

from __future__ import annotations

import itertools
from typing import Final

import numpy as np
import numpy.typing as npt

#: Deepest padded tree accepted (2**D leaf slots per tree), and most leaf slots in all (~25 bytes each): a
#: forest of max_samples m is at most ceil(log2 m) deep, so this admits 100 trees of max_samples 262144.
MAX_DEPTH: Final = 24
MAX_LEAF_SLOTS: Final = 1 << 25
#: Row-tree pairs per traversal chunk: keeps the working arrays in cache.
_CHUNK_PAIRS: Final = 1 << 16
_FEATURE_MASK: Final = (1 << 31) - 1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def average_path_length(n: npt.NDArray[np.float64]) -> FloatArray:
    """Average path length of an unsuccessful search in a binary search tree of ``n`` nodes (c(n))."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def float32_at_most(threshold: FloatArray) -> npt.NDArray[np.float32]:
    """The largest float32 not above each float64 threshold."""
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


class PaddedForest:
    """A forest in padded form: per-tree node tables of ``2**D - 1`` splits and ``2**D`` leaf values."""

    def __init__(
        self,
        *,
        offsets: IntArray,
        children_left: IntArray,
        children_right: IntArray,
        feature: IntArray,
        threshold: FloatArray,
        missing_go_to_left: npt.NDArray[np.uint8],
        leaf_value: FloatArray,
    ) -> None:
        n_trees = len(offsets) - 1
        depth = max(
            (_tree_depth(children_left[a:b], children_right[a:b]) for a, b in itertools.pairwise(offsets)), default=0
        )
        if depth > MAX_DEPTH or n_trees << depth > MAX_LEAF_SLOTS:
            raise ValueError(
                f"{n_trees} trees {depth} levels deep need {n_trees << depth} padded leaf slots; "
                f"at most {MAX_LEAF_SLOTS} (depth {MAX_DEPTH}) are supported"
            )
        self.n_trees = n_trees
        self.depth = depth
        width = max((1 << depth) - 1, 1)
        feature2d = np.zeros((n_trees, width), dtype=np.int64)
        threshold2d = np.full((n_trees, width), np.inf)
        missing2d = np.zeros((n_trees, width), dtype=bool)
        leaf2d = np.zeros((n_trees, 1 << depth), dtype=np.float64)
        for t, (a, b) in enumerate(itertools.pairwise(offsets)):
            left, right = children_left[a:b], children_right[a:b]
            nodes = np.zeros(1, dtype=np.int64)  # original node at each padded position of this level
            for level in range(depth):
                span = slice((1 << level) - 1, (1 << (level + 1)) - 1)
                split = left[nodes] >= 0
                feature2d[t, span][split] = feature[a + nodes[split]]
                threshold2d[t, span][split] = threshold[a + nodes[split]]
                missing2d[t, span][split] = missing_go_to_left[a + nodes[split]].astype(bool)
                nxt = np.empty(2 * len(nodes), dtype=np.int64)
                nxt[0::2] = np.where(split, left[nodes], nodes)  # a leaf fills both slots below it
                nxt[1::2] = np.where(split, right[nodes], nodes)
                nodes = nxt
            leaf2d[t] = leaf_value[a + nodes]
        threshold32 = float32_at_most(threshold2d)
        # One table per level, tree-major: node p of level L of tree t is entry t * 2**L + p, so a child's
        # entry is 2 * entry + (0 left | 1 right) and after D levels the entry indexes the leaf table directly.
        # Each entry packs the split's float32 threshold as an order-preserving integer key (high bits) with
        # its feature (low 31 bits): with x stored as ``key(x) << 31``, "x > threshold" is one integer compare
        # of x against the packed entry, and the feature is the entry's low bits. The NaN path (rare) reads
        # feature, threshold and missing-value direction from tables of their own.
        packed = (order_key(threshold32) << 31) | feature2d
        self._levels: list[tuple[IntArray, IntArray, npt.NDArray[np.float32], npt.NDArray[np.bool_]]] = []
        for level in range(depth):
            span = slice((1 << level) - 1, (1 << (level + 1)) - 1)
            self._levels.append(
                (
                    np.ascontiguousarray(packed[:, span]).ravel(),
                    np.ascontiguousarray(feature2d[:, span]).ravel(),
                    np.ascontiguousarray(threshold32[:, span]).ravel(),
                    np.ascontiguousarray(missing2d[:, span]).ravel(),
                )
            )
        self._leaf_flat = leaf2d.ravel()
        self._trees = np.arange(n_trees, dtype=np.intp)

    def path_lengths(self, x32: npt.NDArray[np.float32]) -> FloatArray:
        """Sum over trees of each row's path length (depth plus c(leaf size)); ``x32`` is ``(n, features)``."""
        n = x32.shape[0]
        out = np.empty(n, dtype=np.float64)
        chunk = max(1, _CHUNK_PAIRS // max(self.n_trees, 1))
        nan_aware = x32.size > 0 and bool(np.isnan(x32).any())
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            out[start:stop] = self._chunk(x32[start:stop], nan_aware)
        return out

    def _chunk(self, x32: npt.NDArray[np.float32], nan_aware: bool) -> FloatArray:
        # Arrays are (tree, row): neighbouring entries walk the same tree, so table lookups stay local.
        n, n_features = x32.shape
        pos = np.empty((self.n_trees, n), dtype=np.intp)
        pos[:] = self._trees[:, None]
        row_base = np.empty_like(pos)
        row_base[:] = np.arange(n, dtype=np.intp) * n_features
        at = np.empty_like(pos)
        if nan_aware:
            flat_x = np.ascontiguousarray(x32).ravel()
            go = np.empty(pos.shape, dtype=bool)
            for _, feature, threshold, missing_left in self._levels:
                np.add(feature[pos], row_base, out=at)
                x = flat_x[at]
                # scikit-learn: NaN goes where the node says, numbers go left when x <= threshold
                np.less_equal(x, threshold[pos], out=go)
                go |= np.isnan(x) & missing_left[pos]
                np.logical_not(go, out=go)
                pos <<= 1
                pos += go
        elif self._levels:
            x_keys = order_key(np.ascontiguousarray(x32)).ravel() << 31
            node = np.repeat(self._levels[0][0][:, None], n, axis=1)  # every row starts at its tree's root
            x = np.empty_like(node)
            for level, (packed, _, _, _) in enumerate(self._levels):
                # mode="clip" skips numpy's error buffering (indices are in range by construction)
                if level:
                    np.take(packed, pos, out=node, mode="clip")
                np.bitwise_and(node, _FEATURE_MASK, out=at)
                at += row_base
                np.take(x_keys, at, out=x, mode="clip")
                # key(x) > key(threshold), i.e. "not x <= threshold", is the sign of packed - key(x) << 31:
                # -1 to go right, 0 to go left (|keys| < 2**62, so the difference cannot overflow).
                np.subtract(node, x, out=node)
                node >>= 63
                pos <<= 1
                pos -= node
        # Sum over trees one tree after another (scikit-learn's order): reducing the outer axis does that,
        # except for a single row, where numpy would sum the contiguous column pairwise.
        leaves = np.take(self._leaf_flat, pos, mode="clip")
        values: FloatArray = leaves.sum(axis=0) if n > 1 else np.cumsum(leaves[:, 0])[-1:]
        return values


def order_key(x: npt.NDArray[np.float32]) -> IntArray:
    """An int64 key per float32 that orders like the floats (-0.0 and 0.0 share a key; NaN is unordered)."""
    bits = x.astype(np.float32).view(np.int32).astype(np.int64)
    magnitude = bits & 0x7FFFFFFF
    return np.where(bits < 0, -magnitude, magnitude)


def _tree_depth(left: IntArray, right: IntArray) -> int:
    """Depth of the deepest leaf (root alone is depth 0), walking level by level."""
    depth = 0
    level = np.zeros(1, dtype=np.int64)
    while depth <= MAX_DEPTH:  # stop early: a malformed tree must not grow the frontier without bound
        inner = level[left[level] >= 0]
        if not len(inner):
            return depth
        level = np.concatenate([left[inner], right[inner]])
        depth += 1
    return depth
