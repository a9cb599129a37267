"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofInvalid(Exception):
    """A Merkle proof does not verify."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of a list of leaf hashes (level by level; an odd last node moves up)."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class Frontier:
    """The right edge of a growing RFC 6962 tree: one subtree hash per set bit of its size.

    Enough to append leaves and compute every later root without the earlier leaves (the
    "compact range" of transparency-dev/merkle, from the left edge of the tree).
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count() or any(len(h) != 32 for h in hashes):
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} 32-byte hashes")
        self.size = size
        self.hashes = list(hashes)  # left to right: largest subtree first

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash; merge equal-sized subtrees as a binary counter carries."""
        hashes = self.hashes
        hashes.append(leaf)
        carry = self.size
        while carry & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            carry >>= 1
        self.size += 1

    def root(self) -> bytes:
        """The tree hash of the leaves appended so far."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[n]) over leaf hashes."""
    n = len(hashes)
    if not 0 <= index < n:
        raise ValueError("index out of range")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(hashes[:k], index), root_from_leaf_hashes(hashes[k:])]
    return [*inclusion_proof(hashes[k:], index - k), root_from_leaf_hashes(hashes[:k])]


def consistency_proof(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 6962 PROOF(m, D[n]): proves the first old_size leaves are a prefix of all of them."""
    n = len(hashes)
    if not 0 <= old_size <= n:
        raise ValueError("old size out of range")
    if old_size in (0, n):
        return []
    return _subproof(old_size, hashes, True)


def _subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [root_from_leaf_hashes(hashes)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], complete), root_from_leaf_hashes(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], False), root_from_leaf_hashes(hashes[:k])]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2; raises ProofInvalid."""
    if index >= size or len(root) != 32 or len(leaf) != 32:
        raise ProofInvalid("index beyond tree size or malformed hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofInvalid("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise ProofInvalid("root mismatch")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2; raises ProofInvalid."""
    if old_size > new_size:
        raise ProofInvalid("old tree is larger than new tree")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofInvalid("equal sizes need equal roots and an empty proof")
        return
    if old_size == 0:
        if proof:
            raise ProofInvalid("proof from an empty tree must be empty")
        return
    if not proof:
        raise ProofInvalid("empty proof")
    path = list(proof)
    # Step 2: when the old size is a power of two, the old root is the first node of the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofInvalid("proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofInvalid("roots do not match the proof")
