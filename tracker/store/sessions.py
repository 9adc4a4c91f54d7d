"""Report page sessions (``report_sessions``): opened at sign-in, closed at sign-out.

A signed cookie alone cannot be taken back before it expires; a row per session
can, for every worker at once."""

from __future__ import annotations

import secrets

import asyncpg


async def open_session(conn: asyncpg.Connection, max_age_seconds: int) -> bytes:
    """A new session's id; sessions already expired are deleted on the way."""
    ident = secrets.token_bytes(16)
    async with conn.transaction():
        await conn.execute("DELETE FROM report_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO report_sessions (id, expires_at)"
            " VALUES ($1, now() + make_interval(secs => $2))", ident, max_age_seconds)
    return ident


async def session_is_open(conn: asyncpg.Connection, ident: bytes) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM report_sessions WHERE id = $1 AND expires_at > now())",
        ident))


async def close_session(conn: asyncpg.Connection, ident: bytes) -> None:
    await conn.execute("DELETE FROM report_sessions WHERE id = $1", ident)
