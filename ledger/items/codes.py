"""Item codes: GTIN and serial packed into the on-chain ``itemId``, label secrets, and the
GS1 Digital Link URIs printed on labels (parsed and built with ``biip``, GS1's rules).

A label reads ``https://<resolver>/01/<GTIN-14>/21/<serial>?s=<secret>``: the secret is 16
random bytes (base64url, 22 characters) that only the physical label carries. The chain
holds only ``keccak256(abi.encode(secret as bytes32))`` inside a batch's Merkle root, so
knowing or guessing serial numbers is not enough to claim an item.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString, GS1ElementStrings
from biip.gtin import Gtin
from eth_utils.crypto import keccak

from ..errors import ItemCodeError

# GS1 AI 21: up to 20 characters of GS1 AI encodable character set 82; we take the
# alphanumeric subset plus - . _ so a serial stays readable in a URI path without escaping.
SERIAL_RE = re.compile(r"^[0-9A-Za-z\-._]{1,20}$")
SECRET_BYTES = 16
SECRET_RE = re.compile(r"^[0-9A-Za-z\-_]{22}$")
DEFAULT_RESOLVER = "id.alliance.example"


def parse_gtin(value: str | int) -> int:
    """The GTIN as the 14-digit integer the contract takes; GTIN-8/12/13 are left-padded.
    Refuses anything but digits with a valid GS1 check digit (``invalid-gtin``)."""
    text = str(value).strip()
    if not text.isdigit() or not 8 <= len(text) <= 14:
        raise ItemCodeError(f"not a GTIN: {text!r}", code="invalid-gtin", field="gtin")
    try:
        gtin = Gtin.parse(text)
    except ParseError as exc:
        raise ItemCodeError(str(exc), code="invalid-gtin", field="gtin") from exc
    return int(gtin.as_gtin_14())


def gtin14(gtin: int) -> str:
    return f"{gtin:014d}"


def check_serial(serial: str) -> str:
    if not SERIAL_RE.fullmatch(serial):
        raise ItemCodeError(f"not a serial (1-20 of 0-9 A-Z a-z - . _): {serial!r}",
                            code="invalid-serial", field="serial")
    return serial


def item_id(gtin: int, serial: str) -> bytes:
    """``gtin << 160 | serial`` (ASCII, left-aligned in 20 bytes): the contract's itemIdOf."""
    raw = check_serial(serial).encode("ascii").ljust(20, b"\0")
    return ((gtin << 160) | int.from_bytes(raw, "big")).to_bytes(32, "big")


def split_item_id(value: bytes) -> tuple[int, str]:
    """(gtin, serial) of an itemId."""
    n = int.from_bytes(value, "big")
    return n >> 160, (n & ((1 << 160) - 1)).to_bytes(20, "big").rstrip(b"\0").decode("ascii")


def new_secret() -> str:
    """A fresh label secret (16 random bytes, base64url without padding)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()


def secret_word(secret: str) -> bytes:
    """The secret as the contract's ``bytes32`` (16 bytes, zero-padded on the right)."""
    if not SECRET_RE.fullmatch(secret):
        raise ItemCodeError("not a label secret", code="invalid-secret", field="secret")
    raw = base64.urlsafe_b64decode(secret + "==")
    return raw.ljust(32, b"\0")


def secret_hash(secret: str) -> bytes:
    """``keccak256(abi.encode(bytes32 secret))``, what a batch leaf commits to."""
    return keccak(secret_word(secret))  # abi.encode of one bytes32 is the word itself


@dataclass(frozen=True)
class ItemCode:
    """A scanned or printed code: GTIN, serial and (on a label) its secret."""

    gtin: int
    serial: str
    secret: str | None = None

    @property
    def item_id(self) -> bytes:
        return item_id(self.gtin, self.serial)

    def uri(self, resolver: str = DEFAULT_RESOLVER) -> str:
        """The GS1 Digital Link URI (with ``?s=<secret>`` when the secret is known)."""
        strings = GS1ElementStrings([GS1ElementString.extract("01" + gtin14(self.gtin)),
                                     GS1ElementString.extract("21" + self.serial)])
        base = GS1DigitalLinkURI.from_element_strings(strings).as_uri(domain=resolver)
        return base if self.secret is None else f"{base}?s={self.secret}"


def parse_code(uri: str) -> ItemCode:
    """An :class:`ItemCode` from a GS1 Digital Link URI (any resolver domain). The GTIN's
    check digit is validated; a secret, if present, must be well-formed."""
    try:
        link = GS1DigitalLinkURI.parse(uri.strip())
    except ParseError as exc:
        raise ItemCodeError(f"not a GS1 Digital Link URI: {exc}", field="code") from exc
    values = {es.ai.ai: es for es in link.element_strings}
    if "01" not in values or "21" not in values:
        raise ItemCodeError("the code must carry a GTIN (01) and a serial (21)", field="code")
    if values["01"].gtin_error:
        raise ItemCodeError(values["01"].gtin_error, code="invalid-gtin", field="code")
    gtin = parse_gtin(values["01"].value)
    serial = check_serial(values["21"].value)
    query = parse_qs(urlsplit(uri.strip()).query)
    secret = query.get("s", [None])[0]
    if secret is not None:
        secret_word(secret)
    return ItemCode(gtin, serial, secret)
