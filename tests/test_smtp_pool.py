"""Issue 18, relay speed: the relay's own connection pool (tracker.smtp.pool) against
a real PostgreSQL: at most ``size`` connections, lent in turn when all are out; a
connection that may be mid-query (a database error, a cancellation) or left in a
transaction is closed, never lent again; one whose block failed for the relay's
own reasons is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from tracker.smtp.pool import Pool


def run(database: str, size: int, test: Callable[[Pool], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        pool = Pool(database, size)
        await pool.start()
        try:
            return await test(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


async def backend(pool: Pool) -> int:
    async with pool.acquire() as conn:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
        return pid


def test_connections_are_kept_and_lent_again(database: str) -> None:
    async def test(pool: Pool) -> None:
        first = await backend(pool)
        assert await backend(pool) == first
        with pytest.raises(ValueError):  # the relay's own error: no query was running
            async with pool.acquire():
                raise ValueError("a malformed message")
        assert await backend(pool) == first

    run(database, 2, test)


@pytest.mark.parametrize("error", [asyncpg.PostgresError, OSError, asyncio.CancelledError])
def test_a_connection_that_may_be_mid_query_is_closed(database: str,
                                                      error: type[BaseException]) -> None:
    async def test(pool: Pool) -> None:
        first = await backend(pool)
        with pytest.raises(error):
            async with pool.acquire() as conn:
                kept = conn
                raise error()
        assert kept.is_closed()
        assert await backend(pool) != first

    run(database, 2, test)


def test_a_transaction_left_open_closes_the_connection(database: str) -> None:
    async def test(pool: Pool) -> None:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            kept = conn
        assert kept.is_closed()
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()

    run(database, 1, test)


def test_no_more_than_size_connections_and_waiters_served_in_turn(database: str) -> None:
    async def test(pool: Pool) -> None:
        order: list[int] = []
        pids: set[int] = set()

        async def borrow(number: int) -> None:
            async with pool.acquire() as conn:
                order.append(number)  # in the order lent
                pids.add(await conn.fetchval("SELECT pg_backend_pid()"))
                await asyncio.sleep(0.05)

        await asyncio.gather(*(borrow(n) for n in range(8)))
        assert len(pids) == 2 and sorted(order) == list(range(8))
        assert order[2:] == list(range(2, 8)), "waiters are served first come first served"

    run(database, 2, test)


def test_a_waiter_cancelled_or_a_failed_connect_gives_its_turn_on(database: str) -> None:
    async def test(pool: Pool) -> None:
        async with pool.acquire():
            waiting = asyncio.ensure_future(backend(pool))
            await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        first = await backend(pool)  # the cancelled waiter took no connection
        async with pool.acquire():
            waiting = asyncio.ensure_future(backend(pool))
            await asyncio.sleep(0.01)
        waiting.cancel()  # handed the connection, cancelled before it ran: given back
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await backend(pool) == first
        bad = Pool("postgresql://nobody@127.0.0.1:1/none", 1)
        for _ in range(3):  # each failed connect gives its slot back
            with pytest.raises(OSError):
                await bad.start()

    run(database, 1, test)


def test_connections_lent_while_closing_are_closed_on_return(database: str) -> None:
    async def test(pool: Pool) -> None:
        async with pool.acquire() as conn:
            await pool.close()
            await conn.execute("SELECT 1")
        assert conn.is_closed()
        with pytest.raises(asyncpg.InterfaceError):
            await backend(pool)

    run(database, 1, test)
