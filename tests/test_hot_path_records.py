"""The recorder packs each event record in one call (tracker/recorder.py); what it
journals must stay exactly what tracker.events and the shipper read back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tracker.events import RECORD_DEFINITION, RECORD_EVENT, Dictionary, Kind, decode_record
from tracker.journal import Journal, read_frames, segment_name
from tracker.recorder import Recorder
from tracker.tokens import Channel, TokenData

UA = b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


def _journaled(tmp_path: Path) -> list[tuple[int, tuple]]:
    async def run() -> Journal:
        journal = Journal(tmp_path)
        journal.open()
        recorder = Recorder(journal)
        data = TokenData(delivery_id=9_000_000_001, campaign=7, schedule_task=11,
                         channel=Channel.EMAIL, is_test=False, link_position=3,
                         url="https://example.com/a")
        headers = [(b"host", b"t"), (b"user-agent", UA)]
        assert await recorder.record(headers, "GET", data, Kind.CLICK, 3,
                                     b"https://example.com/a", client=("192.0.2.1", 1))
        assert await recorder.record(headers, "HEAD", data, Kind.OPEN, client=None)
        await journal.close()
        return journal

    journal = asyncio.run(run())
    data = (journal.directory / segment_name(1)).read_bytes()
    journal.release(remove=False)
    return [decode_record(body) for _, body in read_frames(data)]


def test_events_and_definitions_read_back_exactly(tmp_path: Path) -> None:
    before = time.time_ns() // 1000
    records = _journaled(tmp_path)
    kinds = [rtype for rtype, _ in records]
    # first hit: its user agent and URL defined ahead of it; second: the event only
    assert kinds == [RECORD_DEFINITION, RECORD_DEFINITION, RECORD_EVENT, RECORD_EVENT]
    definitions = {fields[0]: fields for rtype, fields in records if rtype == RECORD_DEFINITION}
    assert definitions[Dictionary.USER_AGENT][2] == UA
    assert definitions[Dictionary.URL][2] == b"https://example.com/a"
    click, open_ = (fields for rtype, fields in records if rtype == RECORD_EVENT)
    ts, delivery, url_id, ua_id, campaign, task, kind, flags, position = click
    assert before <= ts <= time.time_ns() // 1000
    assert (delivery, campaign, task, kind, position) == (9_000_000_001, 7, 11, Kind.CLICK, 3)
    assert url_id == definitions[Dictionary.URL][1]
    assert ua_id == definitions[Dictionary.USER_AGENT][1]
    assert flags & 1 == 0  # a GET
    assert open_[6] == Kind.OPEN and open_[2] == 0 and open_[3] == ua_id
    assert open_[7] & 1 == 1  # HEAD flag
