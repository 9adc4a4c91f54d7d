"""Compact signed tokens for the three tracking purposes: open, click, unsubscribe.

Why binary and not JSON: a token travels in every link of millions of messages, so
its size matters, and decoding a handful of varints is cheaper than parsing JSON on
the hot path. A token is ``base64url(payload) + "." + base64url(signature)``, signed
by :class:`itsdangerous.Signer` with HMAC-SHA256 truncated to 128 bits (RFC 2104
section 5 allows truncation to at least half the hash length). Each purpose has its
own salt, so an open token can never pass for a click token.

Payload layout (integers big-endian in as few bytes as they need; 0 takes none)::

    byte 0   high nibble: bytes of delivery_id, low nibble: bytes of campaign
    byte 1   high nibble: bytes of schedule_task, low nibble: flags
    delivery_id, campaign, schedule_task
    clicks only: link_position (2 bytes), then the target URL as UTF-8

``flags`` holds the channel in its low 3 bits and the test-send flag in bit 3.
``campaign`` and ``schedule_task`` are the tracker's internal integer ids; the
sender's own string ids live in the database and never travel in a link.
Length prefixes rather than varints: slicing and ``int.from_bytes`` decode in a
third of the time of a Python varint loop, for one byte more per token.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Callable
from enum import IntEnum
from typing import NamedTuple

from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import base64_decode, base64_encode
from itsdangerous.signer import SigningAlgorithm

from tracker.urls import check_target_url, is_safe_location

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


def channel_named(value: object) -> Channel | None:
    """The channel called ``value`` ("email", "push", "line"); None for anything else,
    whatever JSON type it is (a dict or list must not reach a dict lookup)."""
    return CHANNELS_BY_NAME.get(value) if isinstance(value, str) else None

_TEST_FLAG = 0b1000
_CHANNEL_MASK = 0b0111


class InvalidToken(Exception):
    """The token is malformed, tampered with, signed by an unknown key or meant for
    another purpose. Callers treat every case alike: no redirect, no record."""


class TokenData(NamedTuple):
    """What a token says about the message it was minted for.

    A NamedTuple rather than a frozen dataclass: it is built on every hit, and
    a tuple is several times cheaper to build while just as immutable."""

    delivery_id: int
    campaign: int
    schedule_task: int
    channel: int  # a Channel value
    is_test: bool = False
    link_position: int = 0
    url: str = ""


SIGNATURE_BYTES = 16
_SIGNATURE_CHARS = 22  # base64 of 16 bytes, unpadded

#: base64url as ``base64.urlsafe_b64encode`` makes it, without its two Python calls
#: per use (minting signs ~50 tokens a message)
_b64 = binascii.b2a_base64
_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: and back, as ``base64.urlsafe_b64decode`` decodes (non-alphabet bytes discarded)
_unb64 = binascii.a2b_base64
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


class TruncatedHMAC(SigningAlgorithm):
    """HMAC-SHA256 cut to 16 bytes: 128 bits of forgery resistance, 22 characters."""

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.digest(key, value, "sha256")[:SIGNATURE_BYTES]


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


#: link positions are stored as smallint; more links than this in one message are
#: not tracked individually (the position saturates, the click still counts)
MAX_LINK_POSITION = 32767
_MAX_FIELD_BYTES = (8, 4, 4)  # delivery_id, campaign, schedule_task


def _field(value: int, max_bytes: int, name: str) -> bytes:
    if value < 0 or value.bit_length() > 8 * max_bytes:
        raise ValueError(f"{name} must be an integer from 0 to 2**{8 * max_bytes - 1}, got {value}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def pack(data: TokenData, purpose: Purpose) -> bytes:
    """Encode the payload of a token (without signature)."""
    delivery = _field(data.delivery_id, 8, "delivery_id")
    campaign = _field(data.campaign, 4, "campaign")
    task = _field(data.schedule_task, 4, "schedule_task")
    if data.channel not in (1, 2, 3):
        raise ValueError(f"channel must be 1 (email), 2 (push) or 3 (line), got {data.channel}")
    flags = int(data.channel) | (_TEST_FLAG if data.is_test else 0)
    out = bytes(((len(delivery) << 4) | len(campaign), (len(task) << 4) | flags))
    out += delivery + campaign + task
    if purpose is Purpose.CLICK:
        position = min(max(data.link_position, 0), MAX_LINK_POSITION)
        out += position.to_bytes(2, "big") + data.url.encode("utf-8")
    return out


def unpack(payload: bytes, purpose: Purpose) -> TokenData:
    """Decode a verified payload; raises InvalidToken on any inconsistency."""
    if len(payload) < 2:
        raise InvalidToken("payload too short")
    lengths, second = payload[0], payload[1]
    a = 2 + (lengths >> 4)
    b = a + (lengths & 0x0F)
    c = b + (second >> 4)
    flags = second & 0x0F
    channel = flags & _CHANNEL_MASK
    if a > 10 or b - a > 4 or c - b > 4 or not 1 <= channel <= 3 or c > len(payload):
        raise InvalidToken("inconsistent field lengths or unknown channel")
    delivery_id = int.from_bytes(payload[2:a], "big")
    campaign = int.from_bytes(payload[a:b], "big")
    schedule_task = int.from_bytes(payload[b:c], "big")
    is_test = flags >= _TEST_FLAG
    if purpose is not Purpose.CLICK:
        if c != len(payload):
            raise InvalidToken("trailing bytes")
        return TokenData(delivery_id, campaign, schedule_task, channel, is_test)
    if c + 2 > len(payload):
        raise InvalidToken("click payload ends before its link position")
    position = int.from_bytes(payload[c : c + 2], "big")
    try:
        url = payload[c + 2 :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidToken("target URL is not UTF-8") from exc
    return TokenData(delivery_id, campaign, schedule_task, channel, is_test, position, url)


class _PrecomputedHMAC:
    """HMAC-SHA256 (RFC 2104) with the padded key hashed once.

    ``hmac.digest`` re-hashes the key pads on every call; copying two hash
    states that already absorbed them does the same work in 40% of the time.
    A test holds it equal to ``hmac.digest``."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(x ^ 0x36 for x in key))
        self._outer = hashlib.sha256(bytes(x ^ 0x5C for x in key))

    def digest(self, value: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(value)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


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
        self._signers: dict[Purpose, _CachedKeySigner] = {
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
        # the keys each signer derives, newest first: verification tries them in
        # that order, as Signer.unsign does, but without re-entering its machinery
        self._verify_keys = {
            purpose: [_PrecomputedHMAC(signer.derive_key(k)) for k in reversed(signer.secret_keys)]
            for purpose, signer in self._signers.items()
        }
        self._signing = {purpose: self.signer(purpose) for purpose in Purpose}

    def signer(self, purpose: Purpose) -> Callable[[bytes], bytes]:
        """:meth:`sign_payload` for one purpose, as a function (what a minter keeps).

        Open-coded because it runs ~50 times a message: the two hash states of
        :class:`_PrecomputedHMAC` copied in place (a method call less), and the
        token joined by ``+`` (``b"%s.%s" %`` took half the time of the HMAC)."""
        key = self._verify_keys[purpose][0]
        inner_state, outer_state = key._inner, key._outer

        def sign(payload: bytes) -> bytes:
            value = _b64(payload, newline=False).translate(_URLSAFE).rstrip(b"=")
            inner = inner_state.copy()
            inner.update(value)
            outer = outer_state.copy()
            outer.update(inner.digest())
            signature = _b64(outer.digest()[:SIGNATURE_BYTES], newline=False)
            return value + b"." + signature[:_SIGNATURE_CHARS].translate(_URLSAFE)

        return sign

    def sign_payload(self, purpose: Purpose, payload: bytes) -> bytes:
        """Sign an already packed payload with the newest key: the token as ASCII bytes.

        The fast path for minting hundreds of links per message: the same output as
        ``mint`` (a test holds them equal) without re-checking what the caller
        checked once per campaign. Only for payloads made by ``pack`` from a
        checked target URL."""
        return self._signing[purpose](payload)

    def mint(self, purpose: Purpose, data: TokenData) -> str:
        """Sign a token. A click token's target must be a safe http(s) URL."""
        if purpose is Purpose.CLICK:
            check_target_url(data.url)
        encoded = base64_encode(pack(data, purpose))
        return self._signers[purpose].sign(encoded).decode("ascii")

    def verify(self, purpose: Purpose, token: str) -> TokenData:
        """Return the token's data or raise InvalidToken; never anything else.

        Equivalent to ``Signer.unsign`` with the same derived keys (a test holds
        the two to agreement); it is open-coded because it runs on every hit."""
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise InvalidToken("token too long or not ASCII")
        body, dot, signature = token.rpartition(".")
        if not dot or len(signature) != _SIGNATURE_CHARS:
            raise InvalidToken("no signature or a signature of the wrong length")
        value = body.encode("ascii")
        given = signature.encode("ascii")
        # compared as text, not as decoded bytes: a token has one spelling only (the
        # unused low bits of the last character, or '+' and '/' for '-' and '_',
        # would otherwise give each signature sixteen or more). binascii and
        # translate rather than base64.urlsafe_b64*: the same bytes without the
        # module's four Python frames a call, on every hit
        for key in self._verify_keys[purpose]:
            expected = _b64(key.digest(value)[:SIGNATURE_BYTES], newline=False)
            if hmac.compare_digest(expected[:_SIGNATURE_CHARS].translate(_URLSAFE), given):
                break
        else:
            raise InvalidToken("bad signature")
        try:
            payload = _unb64(value.translate(_FROM_URLSAFE) + b"=" * (-len(value) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidToken("not base64") from exc
        data = unpack(payload, purpose)
        if purpose is Purpose.CLICK and not is_safe_location(data.url):
            # a valid signature over an unsafe URL: only a leaked or buggy older key
            raise InvalidToken("signed target is not a safe http(s) URL")
        return data

    def verify_with_itsdangerous(self, purpose: Purpose, token: str) -> TokenData:
        """The reference verification through ``Signer.unsign``, for tests."""
        try:
            encoded = self._signers[purpose].unsign(token.encode("ascii"))
            payload = base64_decode(encoded)
        except (BadSignature, ValueError, UnicodeEncodeError) as exc:
            raise InvalidToken("bad signature or encoding") from exc
        return unpack(payload, purpose)
