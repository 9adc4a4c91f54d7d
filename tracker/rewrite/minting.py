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
        self._sign = codec.sign_payload

    @staticmethod
    def header(delivery_id: int, campaign: int, schedule_task: int, channel: int,
               is_test: bool) -> bytes:
        """The payload shared by every token of a message (an open token's whole payload).

        Raises ValueError for ids out of range (the caller's bug, not the sender's)."""
        return pack(TokenData(delivery_id, campaign, schedule_task, channel, is_test),
                    Purpose.OPEN)

    def open(self, header: bytes) -> str:
        return self._sign(Purpose.OPEN, header).decode("ascii")

    def unsubscribe(self, header: bytes) -> str:
        return self._sign(Purpose.UNSUBSCRIBE, header).decode("ascii")

    def click_bytes(self, header: bytes, position: int, url_bytes: bytes) -> bytes:
        """A click token (ASCII bytes); ``url_bytes`` must come from a checked target."""
        position = min(position, MAX_LINK_POSITION)  # saturates like tokens.pack
        return self._sign(Purpose.CLICK, header + position.to_bytes(2, "big") + url_bytes)

    def click(self, header: bytes, position: int, url_bytes: bytes) -> str:
        return self.click_bytes(header, position, url_bytes).decode("ascii")
