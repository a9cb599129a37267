"""RFC 6962 tree code checked against the published transparency-dev vectors, not only itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expense_audit.merkle import (
    Frontier,
    ProofInvalid,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962_roots.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(h)) for h in VECTORS["leaf_inputs_hex"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["root_hash_by_tree_size_hex"]]

# Inclusion and consistency proofs from transparency-dev/merkle proof/verify_test.go.
INCLUSION = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_root_matches_published_vector(size: int) -> None:
    assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proof_matches_vector_and_verifies(
    leaf: int, size: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(p) for p in proof]
    assert inclusion_proof(LEAVES[:size], leaf - 1) == expected
    verify_inclusion(leaf - 1, size, LEAVES[leaf - 1], expected, ROOTS[size])
    with pytest.raises(ProofInvalid):
        verify_inclusion(leaf - 1, size, LEAVES[leaf - 1], expected[:-1], ROOTS[size])
    with pytest.raises(ProofInvalid):
        verify_inclusion(leaf % size, size, LEAVES[leaf - 1], expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proof_matches_vector_and_verifies(
    old: int, new: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(p) for p in proof]
    assert consistency_proof(LEAVES[:new], old) == expected
    verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    good = [bytes.fromhex(p) for p in proof]
    flipped = [bytes([good[0][0] ^ 16]) + good[0][1:], *good[1:]]
    probes = [
        (old - 1, new, ROOTS[old], ROOTS[new], good),
        (old + 1, new, ROOTS[old], ROOTS[new], good),
        (old, new * 2, ROOTS[old], ROOTS[new], good),
        (old, new, ROOTS[new], ROOTS[old], good),
        (old, new, ROOTS[old], ROOTS[new], []),
        (old, new, ROOTS[old], ROOTS[new], good[:-1]),
        (old, new, ROOTS[old], ROOTS[new], [*good, ROOTS[old]]),
        (old, new, ROOTS[old], ROOTS[new], flipped),
    ]
    for probe in probes:
        with pytest.raises(ProofInvalid):
            verify_consistency(*probe)


def test_consistency_edge_cases() -> None:
    verify_consistency(0, 0, ROOTS[0], ROOTS[0], [])
    verify_consistency(0, 5, ROOTS[0], ROOTS[5], [])
    verify_consistency(3, 3, ROOTS[3], ROOTS[3], [])
    for probe in [
        (1, 0, ROOTS[1], ROOTS[0], []),
        (3, 3, ROOTS[3], ROOTS[4], []),
        (3, 3, ROOTS[3], ROOTS[3], [ROOTS[0]]),
    ]:
        with pytest.raises(ProofInvalid):
            verify_consistency(*probe)


def test_every_prefix_of_a_larger_tree_is_provably_consistent() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(37)]
    for new in range(1, 38):
        for old in range(0, new + 1):
            verify_consistency(
                old,
                new,
                root_from_leaf_hashes(leaves[:old]),
                root_from_leaf_hashes(leaves[:new]),
                consistency_proof(leaves[:new], old),
            )


def test_frontier_gives_every_published_root_without_the_earlier_leaves() -> None:
    frontier = Frontier()
    for size, leaf in enumerate(LEAVES, start=1):
        frontier.append(leaf)
        assert frontier.root() == ROOTS[size]
        # Rebuilt from its saved hashes alone (what a verifier state keeps), it carries on.
        resumed = Frontier(frontier.size, frontier.hashes)
        for later in LEAVES[size:]:
            resumed.append(later)
        assert resumed.root() == ROOTS[-1]
    assert Frontier().root() == ROOTS[0] == root_from_leaf_hashes([])


def test_frontier_with_a_wrong_number_of_hashes_is_refused() -> None:
    with pytest.raises(ValueError, match="frontier of size 3"):
        Frontier(3, [LEAVES[0]])
