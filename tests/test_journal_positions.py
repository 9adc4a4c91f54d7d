"""The two position words a serving process and the shipper process share (issue 17,
goal 5): what the writer has committed bounds what the shipper reads of a live
journal, and what the shipper has landed comes back as the writer's backlog."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from tests.chaos_support import landed
from tests.test_durability import minted, record_opens
from tracker.journal import POSITION_NAME, Journal, PositionWords, segment_name
from tracker.shipper import Shipper


def test_a_word_reads_back_whole_and_a_torn_one_not_at_all(tmp_path: Path) -> None:
    words = PositionWords(tmp_path / POSITION_NAME, create=True)
    try:
        assert words.read(PositionWords.COMMITTED) == (0, 0), "never written"
        words.publish(PositionWords.COMMITTED, 70_000, (1 << 40) - 1)
        words.publish(PositionWords.SHIPPED, 3, 12_345)
        assert words.read(PositionWords.COMMITTED) == (70_000, (1 << 40) - 1)
        assert words.read(PositionWords.SHIPPED) == (3, 12_345)
        # a write caught half-done: the value's bytes changed, its CRC not yet
        other = PositionWords(tmp_path / POSITION_NAME)
        other._map[PositionWords.SHIPPED] ^= 0xFF
        assert other.read(PositionWords.SHIPPED) is None
        other.close()
    finally:
        words.close()


def test_a_live_journal_ships_only_what_its_writer_committed(database: str,
                                                              tmp_path: Path) -> None:
    """Bytes past the committed word (a group being written, not yet fsync'd nor
    acknowledged) stay in the journal while its writer lives; once the writer lets
    go, its journal is finished to the last intact frame, then removed."""
    m = minted(database, "words", 40)
    first, second = m.delivery_ids[:20], m.delivery_ids[20:]

    root = tmp_path / "journal"

    async def scenario() -> None:
        pool = await asyncpg.create_pool(database, min_size=0, max_size=2)
        journal = Journal(root)
        journal.open()
        shipper = Shipper(pool, root)
        try:
            assert all(await record_opens(journal, m, first))
            committed = journal.committed
            # frames of the second half appended behind the writer's back: on disk,
            # past the committed word
            scratch = Journal(tmp_path / "scratch")
            scratch.open()
            assert all(await record_opens(scratch, m, second))
            await scratch.close()
            tail = (scratch.directory / segment_name(1)).read_bytes()
            scratch.release(remove=True)
            with open(journal.directory / segment_name(committed[0]), "ab") as fh:
                fh.write(tail)
            while await shipper.ship_once():
                pass
            journal.refresh_shipped()
            assert journal.backlog_bytes == 0, "the shipped word came back to the writer"
            rows = await pool.fetch("SELECT delivery_id FROM events WHERE campaign = $1",
                                    m.campaign)
            assert sorted(r["delivery_id"] for r in rows) == sorted(first)
            # the writer stops: what follows its committed word is a stopped
            # journal's tail now, shipped to its last intact frame
            await journal.close()
            journal.release()
            for _ in range(10):  # batches may be paced down to a few events
                if not journal.directory.exists():
                    break
                await shipper.ship_once()
            assert not journal.directory.exists(), "a finished journal is removed"
        finally:
            await shipper.stop()
            journal.detach()
            await pool.close()

    asyncio.run(scenario())
    result = landed(database, m.campaign)
    assert result.deliveries == set(m.delivery_ids) and result.duplicates == 0
