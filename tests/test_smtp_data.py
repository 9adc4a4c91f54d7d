"""Issue 18, relay speed: the relay's DATA reader (tracker.smtp.protocol.read_data)
against a real asyncio StreamReader fed the way a socket feeds it, in pieces of
every size: the message as aiosmtpd's line reader would give it, the replies for
too much data and too long lines, and nothing read past the final dot."""

from __future__ import annotations

import asyncio
import random

import pytest

from tracker.smtp.protocol import TOO_LONG, TOO_MUCH, read_data

LIMIT = 1001  # aiosmtpd's stream limit and longest line, CRLF included


def unstuffed(lines: list[bytes]) -> bytes:
    """What aiosmtpd's own reader makes of these CRLF lines (before the final dot)."""
    return b"".join(line[1:] if line.startswith(b".") else line for line in lines)


async def feed_and_read(wire: bytes, pieces: list[int], size_limit: int | None = None
                        ) -> tuple[bytes, str | None, bytes]:
    reader = asyncio.StreamReader(limit=LIMIT)

    async def feed() -> None:
        at = 0
        for size in pieces:
            reader.feed_data(wire[at:at + size])
            at += size
            await asyncio.sleep(0)
        reader.feed_data(wire[at:])
        reader.feed_eof()

    feeding = asyncio.ensure_future(feed())
    content, problem = await read_data(reader, size_limit, LIMIT)
    await feeding
    return content, problem, await reader.read()


def _crlf_lines(data: bytes) -> list[bytes]:
    pieces = data.split(b"\r\n")
    return [p + b"\r\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def split(rng: random.Random, total: int) -> list[int]:
    sizes = []
    while total > 0:
        size = rng.choice((1, 2, 3, 5, 64, 999, 1000, 1001, 1002, 4096, 65536))
        sizes.append(size)
        total -= size
    return sizes


@pytest.mark.parametrize("seed", range(40))
def test_messages_read_in_any_pieces_equal_the_line_reader(seed: int) -> None:
    rng = random.Random(seed)
    words = [b"", b".", b"..", b".x", b"x.", b"a.b", b"\n.", b"x" * 997, b"=", b"\r"]
    text = b"".join(rng.choice(words) + rng.choice(words) + b"\r\n"
                    for _ in range(rng.randint(0, 300)))
    # the lines as the wire cuts them (at CRLF), dot-stuffed as a client sends them
    lines = [b"." + line if line.startswith(b".") else line for line in _crlf_lines(text)]
    wire = b"".join(lines) + b".\r\nMAIL FROM:<next@example.org>\r\n"
    content, problem, rest = asyncio.run(feed_and_read(wire, split(rng, len(wire))))
    if any(len(line) > LIMIT for line in lines):
        assert problem == TOO_LONG
    else:
        assert problem is None and content == unstuffed(lines)
    assert rest == b"MAIL FROM:<next@example.org>\r\n"


def test_empty_message_and_the_end_right_after_a_line() -> None:
    assert asyncio.run(feed_and_read(b".\r\nQUIT\r\n", [1, 1])) == (b"", None, b"QUIT\r\n")
    assert asyncio.run(feed_and_read(b"a\r\n.\r\n", [3])) == (b"a\r\n", None, b"")
    assert asyncio.run(feed_and_read(b"a.\r\n.\r\n", [2, 2])) == (b"a.\r\n", None, b"")


def test_too_much_data_is_read_to_the_end_then_refused() -> None:
    wire = b"x" * 500 + b"\r\n" + b"y" * 500 + b"\r\n.\r\nNOOP\r\n"
    content, problem, rest = asyncio.run(feed_and_read(wire, [700, 700], size_limit=900))
    assert (content, problem, rest) == (b"", TOO_MUCH, b"NOOP\r\n")


@pytest.mark.parametrize("seed", range(20))
def test_a_line_over_the_limit_is_found_wherever_it_is(seed: int) -> None:
    """The longest-line check jumps ~1,000 octets at a time: a line of exactly 1,001
    octets with its CRLF (aiosmtpd's limit) passes, one octet more does not, first, last or between
    lines of any length (with bare CRs and LFs, which do not end a line)."""
    rng = random.Random(seed)
    lines = [rng.choice((b"", b"\r", b"\n", b"x" * rng.randint(0, 998))) + b"\r\n"
             for _ in range(rng.randint(0, 200))]
    at = rng.randint(0, len(lines))
    for longest, problem in ((999, None), (1000, TOO_LONG)):
        body = lines[:at] + [b"y" * (longest - 1) + b"\r\r\n"] + lines[at:]
        content, found, _ = asyncio.run(feed_and_read(b"".join(body) + b".\r\n",
                                                      split(rng, 3000)))
        assert found == problem
        assert content == (b"".join(body) if problem is None else b"")


@pytest.mark.parametrize("seed", range(6))
def test_large_messages_are_taken_out_in_pieces(seed: int) -> None:
    """A message of megabytes leaves the stream in pieces of a few hundred KB (so its
    buffer stays small), with stuffed lines and the end wherever the pieces fall,
    and the size limit counted over all of them."""
    rng = random.Random(seed)
    lines = [(b"." if rng.random() < 0.01 else b"") + b"x" * rng.randint(0, 200) + b"\r\n"
             for _ in range(20_000)]
    lines = [b"." + line if line.startswith(b".") else line for line in lines]
    wire = b"".join(lines) + b".\r\nQUIT\r\n"
    pieces = [rng.choice((1, 3, 4096, 65536, 262144)) for _ in range(200)]
    content, problem, rest = asyncio.run(feed_and_read(wire, pieces))
    assert (content, problem, rest) == (unstuffed(lines), None, b"QUIT\r\n")
    size = len(unstuffed(lines))
    content, problem, rest = asyncio.run(feed_and_read(wire, pieces, size_limit=size // 2))
    assert (content, problem, rest) == (b"", TOO_MUCH, b"QUIT\r\n")


def test_a_stream_ending_mid_message_is_an_incomplete_read() -> None:
    for wire in (b"", b".", b"abc\r\n", b"abc\r\n.", b"abc\r\n.\r"):
        with pytest.raises(asyncio.IncompleteReadError):
            asyncio.run(feed_and_read(wire, [1] * len(wire)))

    async def reset() -> None:
        reader = asyncio.StreamReader(limit=LIMIT)
        reader.feed_data(b"abc\r\n")
        asyncio.get_running_loop().call_soon(reader.set_exception, ConnectionResetError())
        await read_data(reader, None, LIMIT)

    with pytest.raises(ConnectionResetError):
        asyncio.run(reset())


def test_the_idle_timeout_counts_from_the_last_command() -> None:
    """The relay moves its idle deadline at each command instead of remaking the
    timer: commands keep the connection open well past the timeout, and once the
    client is idle for the timeout the relay closes it (margins of seconds)."""

    async def run() -> None:
        from tracker.smtp.protocol import RelaySMTP

        server = await asyncio.get_running_loop().create_server(
            lambda: RelaySMTP(object(), decode_data=False, timeout=2.0), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            assert (await reader.readline()).startswith(b"220")
            started = asyncio.get_running_loop().time()
            while asyncio.get_running_loop().time() - started < 3.0:
                writer.write(b"NOOP\r\n")
                assert await reader.readline() == b"250 OK\r\n"
                await asyncio.sleep(0.2)
            assert await asyncio.wait_for(reader.read(), 30) == b""  # closed when idle
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(run())
