"""The OpenZeppelin standard Merkle tree of a production batch, built off chain.

Same layout as ``@openzeppelin/merkle-tree``'s ``StandardMerkleTree.of(values,
["bytes32", "uint256", "bytes32"])``: leaves are ``keccak256(keccak256(abi.encode(itemId,
index, secretHash)))`` (``index`` the serial's position in its batch, so a proof binds the
item id to its on-chain key)
sorted ascending, stored at the end of a flat array (``tree[len - 1 - i]``), each parent the
commutative keccak of its two children, so the contract checks proofs with OpenZeppelin's
``MerkleProof.verifyCalldata`` unchanged (the contract tests prove the two agree).
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak


def leaf_hash(item_id: bytes, index: int, secret_hash: bytes) -> bytes:
    # abi.encode of (bytes32, uint256, bytes32) is the three words concatenated
    return keccak(keccak(item_id + index.to_bytes(32, "big") + secret_hash))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class StandardMerkleTree:
    """A built tree: its root and the proof of any leaf."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        ordered = sorted(leaves)
        n = len(ordered)
        tree: list[bytes] = [b""] * (2 * n - 1)
        for i, leaf in enumerate(ordered):
            tree[len(tree) - 1 - i] = leaf
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = _pair(tree[2 * i + 1], tree[2 * i + 2])
        self._tree = tree
        self._index = {leaf: len(tree) - 1 - i for i, leaf in enumerate(ordered)}

    @property
    def root(self) -> bytes:
        return self._tree[0]

    def __contains__(self, leaf: bytes) -> bool:
        return leaf in self._index

    def proof(self, leaf: bytes) -> list[bytes]:
        """Sibling hashes from the leaf up (KeyError: not a leaf of this tree)."""
        i = self._index[leaf]
        out: list[bytes] = []
        while i > 0:
            sibling = i - 1 if i % 2 == 0 else i + 1
            out.append(self._tree[sibling])
            i = (i - 1) // 2
        return out


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """What OpenZeppelin's MerkleProof.verify answers (used before anything is queued)."""
    h = leaf
    for p in proof:
        h = _pair(h, p)
    return h == root
