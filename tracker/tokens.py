"""Compact signed tokens for the three tracking purposes: open, click, unsubscribe.

Why binary and not JSON: a token travels in every link of millions of messages, so
its size matters, and decoding a handful of varints is cheaper than parsing JSON on
the hot path. A token is ``base64url(payload) + "." + base64url(signature)``, signed
by :class:`itsdangerous.Signer` with HMAC-SHA256 truncated to 128 bits (RFC 2104
section 5 allows truncation to at least half the hash length). Each purpose has its
own salt, so an open token can never pass for a click token.

Payload layout (all integers are unsigned LEB128 varints)::

    delivery_id  campaign  schedule_task  flags  [link_position  url-utf8...]

``flags`` holds the channel in its low 3 bits and the test-send flag in bit 3.
``campaign`` and ``schedule_task`` are the tracker's internal integer ids; the
sender's own string ids live in the database and never travel in a link.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum

from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import base64_decode, base64_encode
from itsdangerous.signer import SigningAlgorithm

from tracker.urls import UnsafeURL, check_target_url

#: Tokens longer than this are refused without looking at them: no legitimate click
#: URL is longer (browsers and mail clients cap links near 2 KB to 8 KB anyway).
MAX_TOKEN_LENGTH = 6000


class Purpose(IntEnum):
    OPEN = 1
    CLICK = 2
    UNSUBSCRIBE = 3


class Channel(IntEnum):
    EMAIL = 1
    PUSH = 2
    LINE = 3


CHANNEL_NAMES = {Channel.EMAIL: "email", Channel.PUSH: "push", Channel.LINE: "line"}
CHANNELS_BY_NAME = {name: channel for channel, name in CHANNEL_NAMES.items()}

_TEST_FLAG = 0b1000
_CHANNEL_MASK = 0b0111


class InvalidToken(Exception):
    """The token is malformed, tampered with, signed by an unknown key or meant for
    another purpose. Callers treat every case alike: no redirect, no record."""


@dataclass(frozen=True, slots=True)
class TokenData:
    """What a token says about the message it was minted for."""

    delivery_id: int
    campaign: int
    schedule_task: int
    channel: Channel
    is_test: bool = False
    link_position: int = 0
    url: str = ""


class TruncatedHMAC(SigningAlgorithm):
    """HMAC-SHA256 cut to 16 bytes: 128 bits of forgery resistance, 22 characters."""

    def __init__(self, length: int = 16) -> None:
        self.length = length

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, value, hashlib.sha256).digest()[: self.length]


class _CachedKeySigner(Signer):
    """A Signer that derives each key once instead of on every call.

    itsdangerous derives the signing key (an HMAC of the salt) per sign and per
    verify; on the hot path that doubles the cost of a check. The derivation is a
    pure function of (salt, key), so caching it changes nothing but speed.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._derived: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        raw = self.secret_keys[-1] if secret_key is None else secret_key
        if isinstance(raw, str):
            raw = raw.encode()
        derived = self._derived.get(raw)
        if derived is None:
            derived = self._derived[raw] = super().derive_key(raw)
        return derived


def _put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"token fields must be non-negative integers, got {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise InvalidToken("truncated or oversized varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def pack(data: TokenData, purpose: Purpose) -> bytes:
    """Encode the payload of a token (without signature)."""
    out = bytearray()
    _put_varint(out, data.delivery_id)
    _put_varint(out, data.campaign)
    _put_varint(out, data.schedule_task)
    out.append((int(data.channel) & _CHANNEL_MASK) | (_TEST_FLAG if data.is_test else 0))
    if purpose is Purpose.CLICK:
        _put_varint(out, data.link_position)
        out += data.url.encode("utf-8")
    return bytes(out)


def unpack(payload: bytes, purpose: Purpose) -> TokenData:
    """Decode a verified payload; raises InvalidToken on any inconsistency."""
    delivery_id, pos = _get_varint(payload, 0)
    campaign, pos = _get_varint(payload, pos)
    schedule_task, pos = _get_varint(payload, pos)
    if pos >= len(payload):
        raise InvalidToken("payload ends before its flags")
    flags = payload[pos]
    pos += 1
    try:
        channel = Channel(flags & _CHANNEL_MASK)
    except ValueError as exc:
        raise InvalidToken("unknown channel") from exc
    is_test = bool(flags & _TEST_FLAG)
    if purpose is not Purpose.CLICK:
        if pos != len(payload):
            raise InvalidToken("trailing bytes")
        return TokenData(delivery_id, campaign, schedule_task, channel, is_test)
    link_position, pos = _get_varint(payload, pos)
    try:
        url = payload[pos:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidToken("target URL is not UTF-8") from exc
    return TokenData(delivery_id, campaign, schedule_task, channel, is_test, link_position, url)


class TokenCodec:
    """Mints and verifies tokens with a set of keys.

    ``secret_keys`` is newest first, as in ``TRACKER_SECRET_KEYS``: the first key
    signs, every key verifies, so a new key can be put first without breaking the
    links already sent.
    """

    def __init__(self, secret_keys: list[str] | list[bytes]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed to sign tokens")
        oldest_first = list(reversed(secret_keys))
        self._signers = {
            purpose: _CachedKeySigner(
                oldest_first,
                salt=f"tracker.{purpose.name.lower()}",
                sep=".",
                key_derivation="hmac",
                digest_method=hashlib.sha256,
                algorithm=TruncatedHMAC(),
            )
            for purpose in Purpose
        }

    def mint(self, purpose: Purpose, data: TokenData) -> str:
        """Sign a token. A click token's target must be a safe http(s) URL."""
        if purpose is Purpose.CLICK:
            check_target_url(data.url)
        encoded = base64_encode(pack(data, purpose))
        return self._signers[purpose].sign(encoded).decode("ascii")

    def verify(self, purpose: Purpose, token: str | bytes) -> TokenData:
        """Return the token's data or raise InvalidToken; never anything else."""
        if isinstance(token, str):
            try:
                token = token.encode("ascii")
            except UnicodeEncodeError as exc:
                raise InvalidToken("token is not ASCII") from exc
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        try:
            encoded = self._signers[purpose].unsign(token)
            payload = base64_decode(encoded)
        except (BadSignature, ValueError) as exc:
            raise InvalidToken("bad signature or encoding") from exc
        data = unpack(payload, purpose)
        if purpose is Purpose.CLICK:
            try:
                check_target_url(data.url)
            except UnsafeURL as exc:  # a valid signature over an unsafe URL: an old key leaked?
                raise InvalidToken(str(exc)) from exc
        return data
