"""The journal's group commit under load (tracker/journal.py): after a group that
carried COMMIT_SIBLINGS appends or more, the commit thread waits COMMIT_DELAY so the
hits in flight share the next fsync; a lone hit is never held back for company, and
every append is still acknowledged only once it is on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tracker.journal import Journal, frame, read_frames, segment_name

#: long enough that a busy machine cannot stretch the gap between two appends past it
DELAY = 0.5


def _record(n: int) -> bytes:
    return frame(b"\x01" + n.to_bytes(8, "big"))


def _bodies(journal: Journal) -> list[bytes]:
    data = (journal.directory / segment_name(1)).read_bytes()
    return [body for _, body in read_frames(data)]


def test_under_load_hits_in_flight_share_one_fsync(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = Journal(tmp_path, commit_delay=DELAY, commit_siblings=2)
        journal.open()
        try:
            # load: two hits in one group, so the next group commit waits for company
            assert all(await asyncio.gather(journal.append(_record(1)),
                                            journal.append(_record(2))))
            fsyncs = journal.stats.fsyncs
            first = asyncio.ensure_future(journal.append(_record(3)))
            await asyncio.sleep(0.02)  # a hit arriving while the first waits
            second = asyncio.ensure_future(journal.append(_record(4)))
            assert not first.done(), "acknowledged before its group was fsync'd"
            assert await first and await second
            assert journal.stats.fsyncs == fsyncs + 1, "the two shared one fsync"
            assert journal.stats.delayed == 1
            assert journal.pending_bytes == 0
        finally:
            await journal.close()
        assert _bodies(journal) == [b"\x01" + n.to_bytes(8, "big") for n in (1, 2, 3, 4)]
        journal.release(remove=True)

    asyncio.run(scenario())


def test_a_lone_hit_is_not_held_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = Journal(tmp_path, commit_delay=DELAY, commit_siblings=2)
        journal.open()
        try:
            for n in range(3):  # one at a time: no group ever carries a sibling
                assert await journal.append(_record(n))
            assert journal.stats.fsyncs == 3
            assert journal.stats.delayed == 0
        finally:
            await journal.close()
        journal.release(remove=True)

    asyncio.run(scenario())
