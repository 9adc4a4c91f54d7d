"""Tokens: compact, purpose-bound, rotation-safe, and the fast verification path
agrees with itsdangerous's own ``Signer.unsign`` on every input."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.tokens import (
    MAX_LINK_POSITION,
    Channel,
    InvalidToken,
    Purpose,
    TokenCodec,
    TokenData,
    _PrecomputedHMAC,
)

KEYS = ["newest-key-0123456789abcdef", "older-key-0123456789abcdef"]
codec = TokenCodec(KEYS)

token_data = st.builds(
    TokenData,
    delivery_id=st.integers(0, 2**63 - 1),
    campaign=st.integers(0, 2**31 - 1),
    schedule_task=st.integers(0, 2**31 - 1),
    channel=st.sampled_from(list(Channel)),
    is_test=st.booleans(),
    link_position=st.integers(0, MAX_LINK_POSITION),
    url=st.sampled_from(["https://example.com/", "http://例え.jp/パス?q=1&r=2#x"]),
)


@given(token_data, st.sampled_from(list(Purpose)))
def test_round_trip_through_both_verifiers(data: TokenData, purpose: Purpose) -> None:
    token = codec.mint(purpose, data)
    expected = data if purpose is Purpose.CLICK else data._replace(link_position=0, url="")
    assert codec.verify(purpose, token) == expected
    assert codec.verify_with_itsdangerous(purpose, token) == expected


@given(st.text(max_size=80), st.sampled_from(list(Purpose)))
def test_arbitrary_strings_are_refused_by_both_verifiers(text: str, purpose: Purpose) -> None:
    with pytest.raises(InvalidToken):
        codec.verify(purpose, text)
    with pytest.raises(InvalidToken):
        codec.verify_with_itsdangerous(purpose, text)


def test_open_tokens_are_short() -> None:
    token = codec.mint(Purpose.OPEN, TokenData(10**9, 5000, 200_000, Channel.EMAIL))
    assert len(token) < 60


def test_each_purpose_has_its_own_salt() -> None:
    data = TokenData(1, 2, 3, Channel.LINE, url="https://example.com/")
    for minted in Purpose:
        token = codec.mint(minted, data)
        for other in Purpose:
            if other is not minted:
                with pytest.raises(InvalidToken):
                    codec.verify(other, token)


def test_old_key_verifies_and_new_key_signs() -> None:
    data = TokenData(7, 1, 1, Channel.EMAIL)
    old_only = TokenCodec([KEYS[1]]).mint(Purpose.OPEN, data)
    assert codec.verify(Purpose.OPEN, old_only) == data
    new_token = codec.mint(Purpose.OPEN, data)
    assert TokenCodec([KEYS[0]]).verify(Purpose.OPEN, new_token) == data
    with pytest.raises(InvalidToken):
        TokenCodec([KEYS[1]]).verify(Purpose.OPEN, new_token)


@given(st.binary(min_size=1, max_size=200), st.binary(max_size=300))
def test_precomputed_hmac_equals_the_standard_library(key: bytes, value: bytes) -> None:
    assert _PrecomputedHMAC(key).digest(value) == hmac.digest(key, value, "sha256")


def test_fields_out_of_range_cannot_be_minted() -> None:
    with pytest.raises(ValueError):
        codec.mint(Purpose.OPEN, TokenData(-1, 1, 1, Channel.EMAIL))
    with pytest.raises(ValueError):
        codec.mint(Purpose.OPEN, TokenData(1, 2**32, 1, Channel.EMAIL))
    with pytest.raises(ValueError):
        codec.mint(Purpose.OPEN, TokenData(1, 1, 1, 9))


@given(token_data, st.sampled_from(list(Purpose)), st.integers(1, 15))
def test_a_token_has_one_spelling(data: TokenData, purpose: Purpose, low_bits: int) -> None:
    """The last signature character carries four unused bits, and the standard
    alphabet's '+' and '/' decode like '-' and '_': none of those variants of a
    valid token is accepted, so a hit cannot be replayed under another URL."""
    import base64

    token = codec.mint(purpose, data)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1].encode())
    variant = token[:-1] + chr(alphabet[(last & ~0xF) | (last & 0xF) ^ low_bits])
    assert base64.urlsafe_b64decode(variant.rpartition(".")[2] + "==") == \
        base64.urlsafe_b64decode(token.rpartition(".")[2] + "==")  # the same bytes...
    with pytest.raises(InvalidToken):  # ...refused all the same
        codec.verify(purpose, variant)
    standard = token.replace("-", "+").replace("_", "/")
    if standard != token:
        with pytest.raises(InvalidToken):
            codec.verify(purpose, standard)
