"""A redeem batch's nonce words are read from the programs' storage (``eth_getStorageAt`` of
``SignedActions._nonceBitmap``'s slot: a node's storage read costs it a fifth of an
``eth_call`` of ``nonceBitmap``). The slot is the compiler's, and the words read are the
ones the program's own ``nonceBitmap`` answers, on a real chain."""

from __future__ import annotations

import solcx
from eth_account import Account

from ledger.alliance import Alliance
from ledger.chain.sender import TransactionSender
from ledger.contracts import compiler
from ledger.merchants.service import AdmittedMerchant
from ledger.points.service import NONCE_BITMAP_SLOT, SignatureCheck, nonce_bitmap_slot


def test_the_nonce_bitmap_slot_is_where_the_compiler_lays_it_out_in_a_point_program() -> None:
    settings = dict(compiler.solc_config()["settings"])
    settings["outputSelection"] = {"*": {"PointProgram": ["storageLayout"]}}
    sources = compiler._sources(compiler.CONTRACTS_DIR)
    out = solcx.compile_standard(
        {"language": "Solidity", "sources": {n: {"content": t} for n, t in sources.items()},
         "settings": settings},
        solc_binary=compiler.SHIM.resolve(), base_path=str(compiler.ROOT),
        allow_paths=[str(compiler.ROOT), str(compiler.ROOT / "node_modules")])
    layout = out["contracts"]["contracts/PointProgram.sol"]["PointProgram"]["storageLayout"]
    slots = {s["label"]: (int(s["slot"]), int(s["offset"])) for s in layout["storage"]}
    assert slots["_nonceBitmap"] == (NONCE_BITMAP_SLOT, 0)


def test_a_batchs_nonce_words_read_from_storage_are_the_programs_nonce_bitmap(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    gw = alliance.gateway
    program = alliance.contracts.program(store_merchant.program)
    member, other = Account.create(), Account.create()
    gw.rpc("anvil_setBalance", [member.address, hex(10**18)])
    # The member cancels nonces itself in two words (0 and a high one): bits 5, 6 of word 0,
    # and bits 1 and 255 of word 3 (nonces 769 and 1023).
    sender = TransactionSender(gw, member.key)
    for word, mask in ((0, 1 << 5 | 1 << 6), (3, 1 << 1 | 1 << 255)):
        receipt = sender.transact(to=program.address,
                                  data=program.encode("invalidateNonces", word, mask))
        assert int(receipt["status"]) == 1
    for word, mask in ((0, 1 << 5 | 1 << 6), (3, 1 << 1 | 1 << 255), (1, 0)):
        assert program.nonce_bitmap(member.address, word) == mask
        raw = gw.rpc("eth_getStorageAt", [program.address,
                                          nonce_bitmap_slot(member.address, word), "latest"])
        assert int(str(raw), 16) == mask, (word, raw)
    check = SignatureCheck(alliance)
    nonces = [5, 6, 7, 769, 770, 1023, 256]
    check.prefetch([(program.address, member.address, n) for n in nonces]
                   + [(program.address, other.address, 5)])
    # Every word came from the batch (none is left to be read one by one)...
    assert {(m, w) for _, m, w in check._bitmaps} == {
        (member.address, 0), (member.address, 3), (member.address, 1), (other.address, 0)}
    # ... and says what the program says.
    assert [check.nonce_used(program.address, member.address, n) for n in nonces] == \
        [True, True, False, True, False, True, False]
    assert not check.nonce_used(program.address, other.address, 5)
