"""Minting many tokens for one message, fast.

:meth:`TokenCodec.mint` checks and packs everything per call. A message has up to
hundreds of links that share the same header (delivery, campaign, task, flags), and
each link's URL was already checked when the body was compiled, so here a token is
just ``header + position + url`` signed with HMAC pads hashed once. The output is
exactly what ``TokenCodec.mint`` produces (a test holds the two equal) and verifies
with ``TokenCodec.verify``.
"""

from __future__ import annotations

import base64
import hashlib

from tracker.tokens import SIGNATURE_BYTES, Purpose, TokenCodec, TokenData, pack

_b64 = base64.urlsafe_b64encode


class _Pads:
    """HMAC-SHA256 (RFC 2104) with the inner and outer pads absorbed once."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(bytes(x ^ 0x36 for x in key))
        self.outer = hashlib.sha256(bytes(x ^ 0x5C for x in key))


def _signing_key(codec: TokenCodec, purpose: Purpose) -> bytes:
    """The derived key the codec signs ``purpose`` tokens with (its newest key).

    TokenCodec keeps its signers private; this reads the one thing needed. A test
    compares every minted token with ``codec.mint`` so a change there shows at once."""
    signer = codec._signers[purpose]  # noqa: SLF001 - see docstring
    return signer.derive_key()


class Minter:
    """Signs open, click and unsubscribe tokens for one codec's newest key."""

    def __init__(self, codec: TokenCodec) -> None:
        self._pads = {p: _Pads(_signing_key(codec, p)) for p in Purpose}
        self._click = self._pads[Purpose.CLICK]

    @staticmethod
    def header(delivery_id: int, campaign: int, schedule_task: int, channel: int,
               is_test: bool) -> bytes:
        """The payload shared by every token of a message (an open token's whole payload).

        Raises ValueError for ids out of range (the caller's bug, not the sender's)."""
        return pack(TokenData(delivery_id, campaign, schedule_task, channel, is_test),
                    Purpose.OPEN)

    def _sign(self, pads: _Pads, payload: bytes) -> bytes:
        value = _b64(payload).rstrip(b"=")
        inner = pads.inner.copy()
        inner.update(value)
        outer = pads.outer.copy()
        outer.update(inner.digest())
        signature = _b64(outer.digest()[:SIGNATURE_BYTES]).rstrip(b"=")
        return value + b"." + signature

    def open(self, header: bytes) -> str:
        return self._sign(self._pads[Purpose.OPEN], header).decode("ascii")

    def unsubscribe(self, header: bytes) -> str:
        return self._sign(self._pads[Purpose.UNSUBSCRIBE], header).decode("ascii")

    def click_bytes(self, header: bytes, position: int, url_bytes: bytes) -> bytes:
        """A click token (ASCII bytes); ``url_bytes`` must come from a checked target."""
        if position > 32767:
            position = 32767  # saturates like tokens.pack: smallint link positions
        return self._sign(self._click, header + position.to_bytes(2, "big") + url_bytes)

    def click(self, header: bytes, position: int, url_bytes: bytes) -> str:
        return self.click_bytes(header, position, url_bytes).decode("ascii")
