"""Minting many tokens for one message, fast.

:meth:`TokenCodec.mint` checks and packs everything per call. A message has up to
hundreds of links that share the same header (delivery, campaign, task, flags), and
each link's URL was already checked when the body was compiled, so here a token is
just ``header + position + url`` signed by :meth:`TokenCodec.sign_payload`. The
output is exactly what ``TokenCodec.mint`` produces (a test holds the two equal).
"""

from __future__ import annotations

from tracker.tokens import MAX_LINK_POSITION, Purpose, TokenCodec, TokenData, pack


class Minter:
    """Signs open, click and unsubscribe tokens with one codec's newest key."""

    def __init__(self, codec: TokenCodec) -> None:
        self._sign_open = codec.signer(Purpose.OPEN)
        self._sign_click = codec.signer(Purpose.CLICK)
        self._sign_unsubscribe = codec.signer(Purpose.UNSUBSCRIBE)

    @staticmethod
    def header(delivery_id: int, campaign: int, schedule_task: int, channel: int,
               is_test: bool) -> bytes:
        """The payload shared by every token of a message (an open token's whole payload).

        Raises ValueError for ids out of range (the caller's bug, not the sender's)."""
        return pack(TokenData(delivery_id, campaign, schedule_task, channel, is_test),
                    Purpose.OPEN)

    def open(self, header: bytes) -> str:
        return self._sign_open(header).decode("ascii")

    def unsubscribe(self, header: bytes) -> str:
        return self._sign_unsubscribe(header).decode("ascii")

    def click_bytes(self, header: bytes, position: int, url_bytes: bytes) -> bytes:
        """A click token (ASCII bytes); ``url_bytes`` must come from a checked target."""
        return self._sign_click(header + _position(position) + url_bytes)

    def click(self, header: bytes, position: int, url_bytes: bytes) -> str:
        """:meth:`click_bytes` as text (written out: one call less per link)."""
        return self._sign_click(header + _position(position) + url_bytes).decode("ascii")


#: the two bytes of the first link positions, made once (a message's ~50 links)
_POSITIONS = tuple(n.to_bytes(2, "big") for n in range(1024))


def _position(position: int) -> bytes:
    """A link position as a click token stores it, saturated as tokens.pack does."""
    if position < len(_POSITIONS):
        return _POSITIONS[position]
    return min(position, MAX_LINK_POSITION).to_bytes(2, "big")
