"""Item codes without a chain: GS1 Digital Link URIs through biip, GTIN check digits, the
packed itemId, label secrets, the standard Merkle tree, the EPCIS event hash, the labels."""

from __future__ import annotations

import pytest

from ledger.errors import ItemCodeError
from ledger.items import epcis
from ledger.items.clients import DEFAULT_DISPOSITION, BizStep, Disposition
from ledger.items.codes import (
    ItemCode,
    item_id,
    new_secret,
    parse_code,
    parse_gtin,
    secret_hash,
    split_item_id,
)
from ledger.items.merkle import StandardMerkleTree, leaf_hash, verify
from ledger.items.service import label_image, labels_csv


def test_a_code_round_trips_through_its_digital_link_uri() -> None:
    code = ItemCode(parse_gtin("9506000134352"), "JT-01.a_b", new_secret())
    uri = code.uri("scan.example.cn")
    assert uri.startswith("https://scan.example.cn/01/09506000134352/21/JT-01.a_b?s=")
    assert parse_code(uri) == code


@pytest.mark.parametrize("gtin", ["09506000134353", "12345", "95060001343521", "abc"])
def test_a_bad_gtin_is_refused_with_invalid_gtin(gtin: str) -> None:
    with pytest.raises(ItemCodeError) as exc:
        parse_gtin(gtin)
    assert exc.value.code == "invalid-gtin"


def test_gtin_8_12_13_are_padded_to_14() -> None:
    assert parse_gtin("96385074") == 96385074
    assert parse_gtin("036000291452") == 36000291452
    assert parse_gtin("4006381333931") == 4006381333931


def test_a_uri_with_a_bad_check_digit_or_no_serial_is_refused() -> None:
    with pytest.raises(ItemCodeError) as exc:
        parse_code("https://id.example/01/09506000134353/21/X")
    assert exc.value.code == "invalid-gtin"
    with pytest.raises(ItemCodeError):
        parse_code("https://id.example/01/09506000134352")
    with pytest.raises(ItemCodeError) as bad_secret:
        parse_code("https://id.example/01/09506000134352/21/X?s=short")
    assert bad_secret.value.code == "invalid-secret"


def test_the_item_id_packs_gtin_and_serial_reversibly() -> None:
    iid = item_id(9506000134352, "SERIAL-00000000001")
    assert len(iid) == 32 and split_item_id(iid) == (9506000134352, "SERIAL-00000000001")
    with pytest.raises(ItemCodeError):
        item_id(9506000134352, "X" * 21)


def test_every_leaf_of_a_standard_tree_proves_against_its_root() -> None:
    leaves = [leaf_hash(item_id(9506000134352, f"S{i}"), i, secret_hash(new_secret()))
              for i in range(37)]
    tree = StandardMerkleTree(leaves)
    for leaf in leaves:
        assert verify(tree.root, leaf, tree.proof(leaf))
    assert not verify(tree.root, leaves[0], tree.proof(leaves[1]))


def test_the_epcis_hash_is_canonical_and_covers_every_field() -> None:
    code = ItemCode(9506000134352, "A1")
    kw: dict[str, object] = {
        "code": code, "biz_step": BizStep.SHIPPING, "disposition": Disposition.IN_TRANSIT,
        "event_time": 1_764_000_000, "location": "urn:epc:id:sgln:9506000.13435.0",
        "destination": "store:cafe:1"}
    ev = epcis.object_event(**kw)  # type: ignore[arg-type]
    reordered = dict(reversed(list(ev.items())))
    assert epcis.event_hash(ev) == epcis.event_hash(reordered)
    later = epcis.object_event(**{**kw, "event_time": 1_764_000_001})  # type: ignore[arg-type]
    assert epcis.event_hash(later) != epcis.event_hash(ev)
    assert ev["bizStep"] == "shipping"  # hashing does not rewrite the stored document


def test_every_custody_step_exports_as_valid_epcis_2() -> None:
    """Checked against GS1's published EPCIS 2.0 JSON schema (shipped with the tests). It
    caught dispositions written in camel case ("inTransit"): CBV 2.0 names are snake case."""
    from .test_items_ledger import schema_errors

    code = ItemCode(9506000134352, "A1")
    events = [epcis.object_event(code=code, biz_step=step, disposition=disp,
                                 event_time=1_764_000_000 + i,
                                 location="urn:epc:id:sgln:9506000.13435.0",
                                 destination=("urn:epc:id:sgln:9506000.13435.1"
                                              if step == BizStep.SHIPPING else None))
              for i, (step, disp) in enumerate(DEFAULT_DISPOSITION.items())]
    doc = epcis.document(events, created=1_764_000_100)
    assert schema_errors(doc) == []
    broken = epcis.document([{**events[0], "disposition": "inTransit"}], created=0)
    assert schema_errors(broken)


def test_labels_come_out_as_csv_png_and_svg() -> None:
    code = ItemCode(9506000134352, "JT1", new_secret())
    text = labels_csv([code], "id.example")
    assert text.splitlines()[1].startswith("09506000134352,JT1,https://id.example/01/")
    assert label_image(code, "id.example", kind="png")[:4] == b"\x89PNG"
    assert b"<svg" in label_image(code, "id.example", kind="svg")


def test_hashing_events_together_gives_each_its_own_event_hash() -> None:
    """The service hashes a request's events in one EPCIS document (one JSON-LD expansion);
    each hash must be the one GS1's generator gives the event alone, with the context files
    loaded afresh (not through the cached loader)."""
    from pyld import jsonld  # type: ignore[import-untyped]

    events = [epcis.object_event(code=ItemCode(9506000134352, f"B{i}"), biz_step=step,
                                 disposition=DEFAULT_DISPOSITION[step],
                                 event_time=1_764_000_000 + i,
                                 location="urn:epc:id:sgln:9506000.13435.0",
                                 destination=("store:cafe:1" if step == BizStep.SHIPPING
                                              else None))
              for i, step in enumerate([BizStep.SHIPPING, BizStep.RECEIVING,
                                        BizStep.RETAIL_SELLING])]
    together = epcis.event_hashes(events)
    cached = jsonld.get_document_loader()
    jsonld.set_document_loader(epcis._package_loader)
    try:
        alone = [epcis.event_hash(e) for e in events]
    finally:
        jsonld.set_document_loader(cached)
    assert together == alone and len(set(alone)) == 3
