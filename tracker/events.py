"""The event: what a hit becomes, and its fixed binary form in the journal.

One module owns the event's shape so the edge (which writes it), the journal
(which frames it) and the shipper (which lands it) cannot disagree.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from hashlib import blake2b
from typing import Any

#: The mail header that carries the delivery id: set when a message is rewritten,
#: read back from bounce notifications (Amazon SES) to find the delivery.
DELIVERY_HEADER = "X-Tracker-Delivery"


class Kind(IntEnum):
    OPEN = 1
    CLICK = 2
    UNSUBSCRIBE = 3
    SUBSCRIBE = 4
    CONVERSION = 5


EVENT_NAMES = {
    Kind.OPEN: "message_open",
    Kind.CLICK: "message_click",
    Kind.UNSUBSCRIBE: "message_unsubscribe",
    Kind.SUBSCRIBE: "message_subscribe",
    Kind.CONVERSION: "message_conversion",
}


class Flag:
    """Bits of ``events.flags``."""

    HEAD = 0b1  # the hit was a HEAD request (scanners and prefetchers send those)
    VERDICT_SHIFT = 1  # bits 1-3: the classifier's verdict (see tracker.classify)
    VERDICT_MASK = 0b1110
    ANONYMOUS = 0b10000  # campaign tracks anonymously: not linked to the user


class Dictionary(IntEnum):
    """Which dictionary table a definition record belongs to."""

    URL = 1
    USER_AGENT = 2


#: ts_us, delivery_id, url_id, ua_id, campaign, schedule_task, kind, flags, link_position
EVENT = struct.Struct("<qqqqiiHHH")

#: record types inside a journal frame
RECORD_EVENT = 1
RECORD_DEFINITION = 2

_DEFINITION_HEAD = struct.Struct("<Bq")  # dictionary, id


def dictionary_id(data: bytes) -> int:
    """A stable 64-bit id for a URL or user agent: the same bytes, the same id, in
    every process and release, so no lookup is needed to name them."""
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True) or 1


def encode_event(
    ts_us: int,
    delivery_id: int,
    url_id: int,
    ua_id: int,
    campaign: int,
    schedule_task: int,
    kind: int,
    flags: int,
    link_position: int,
) -> bytes:
    return bytes((RECORD_EVENT,)) + EVENT.pack(
        ts_us, delivery_id, url_id, ua_id, campaign, schedule_task, kind, flags, link_position
    )


def encode_definition(dictionary: Dictionary, ident: int, value: bytes) -> bytes:
    return bytes((RECORD_DEFINITION,)) + _DEFINITION_HEAD.pack(dictionary, ident) + value


def decode_record(body: bytes) -> tuple[int, tuple[Any, ...]]:
    """Return (record type, fields) for one journal record body."""
    rtype = body[0]
    if rtype == RECORD_EVENT:
        return rtype, EVENT.unpack_from(body, 1)
    if rtype == RECORD_DEFINITION:
        dictionary, ident = _DEFINITION_HEAD.unpack_from(body, 1)
        return rtype, (dictionary, ident, body[1 + _DEFINITION_HEAD.size :])
    raise ValueError(f"unknown journal record type {rtype}")
