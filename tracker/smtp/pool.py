"""The relay's PostgreSQL connections: a few kept open, lent to one block at a time.

A message takes a connection twice (RCPT's suppression check, DATA's rewrite and
COPY), each for a query or two. asyncpg's ``Pool`` costs more than those queries'
own Python side per loan: a timeout context and a holder on the way out, and a
task of its own (``asyncio.shield``) for every release. Here a loan is a list
``pop`` and ``append`` while connections are idle; only when all ``size`` are
lent does a caller wait (in turn) for one to come back.

A connection comes back to the idle list only when it is known to be ready for
the next query: its block ended normally or by an error of the relay's own (an
upstream's refusal, a malformed message: no query was running then), it is still
open and no transaction is left open on it. After a database or network error,
or a cancellation (which may cut a query short), it is closed and the next loan
opens a new one.
"""

from __future__ import annotations

import asyncio
import collections
from types import TracebackType

import asyncpg

#: What asyncpg and the network raise (a connection refused, reset or found closed,
#: an error from the server): the relay answers 4xx for them, and a connection
#: whose block ended by one is not lent again (a query may have been cut short).
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Pool:
    """Up to ``size`` connections to ``dsn``; ``async with pool.acquire() as conn``."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._idle: list[asyncpg.Connection] = []
        #: connections open, idle or lent (or being opened)
        self._open = 0
        #: callers waiting for a connection, first come first served; each gets
        #: a connection, or None to open one itself
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = (
            collections.deque())
        self._closed = False

    async def start(self) -> None:
        """Open the first connection (so a relay without its database fails at once)."""
        async with self.acquire():
            pass

    def acquire(self) -> _Loan:
        return _Loan(self)

    async def _take(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the relay's connection pool is closed")
        while self._idle:
            idle = self._idle.pop()
            if not idle.is_closed():
                return idle
            self._drop(idle)  # closed by the server meanwhile (a restart, an idle timeout)
        if self._open >= self.size:
            waiter: asyncio.Future[asyncpg.Connection | None] = (
                asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over meanwhile
                    self._give_back(waiter.result(), kept=True)
                raise
            if handed is not None:
                return handed
        else:
            self._open += 1
        try:  # a slot to open a connection in
            connection: asyncpg.Connection = await asyncpg.connect(self.dsn)
        except BaseException:
            self._drop(None)
            raise
        return connection

    def _give_back(self, connection: asyncpg.Connection | None, *, kept: bool) -> None:
        if (not kept or connection is None or self._closed or connection.is_closed()
                or connection.is_in_transaction()):
            self._drop(connection)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _drop(self, connection: asyncpg.Connection | None) -> None:
        """A connection closed (or one that failed to open): its slot goes to the
        first waiter, who opens a new one."""
        if connection is not None:
            connection.terminate()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._open -= 1

    async def close(self) -> None:
        """Close the idle connections; those lent are closed as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(connection.close(), 10)
            except (*DATABASE_ERRORS, TimeoutError):
                connection.terminate()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the relay's connection pool "
                                                            "is closed"))
        self._waiters.clear()


class _Loan:
    """``async with``: a connection for the block (a class, not a generator-based
    context manager: this runs twice a message)."""

    __slots__ = ("_pool", "_connection")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection = await self._pool._take()
        return self._connection

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        kept = error is None or (isinstance(error, Exception)
                                 and not isinstance(error, DATABASE_ERRORS))
        connection, self._connection = self._connection, None
        self._pool._give_back(connection, kept=kept)
