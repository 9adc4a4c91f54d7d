"""Issue 18, relay speed: the relay reads plain MAIL/RCPT addresses without
aiosmtpd's RFC 5322 parser; what it reads must equal what aiosmtpd reads."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP

from tracker.smtp.protocol import RelaySMTP

CASES = ["<a@b.example>", "<a@b.example> SIZE=100 BODY=8BITMIME",
         " <x.y+z@ex-ample.org>  SMTPUTF8", "<>", "<a..b@c>", "<a@b", "a@b.example",
         '<"q"@b>', "<a@[1.2.3.4]>", "<a@b.example>x", "<f.l@sub.domain.example>\tSIZE=1",
         "<a@b.>", "<.a@b>", "<a.@b>", "<a@b.example>  ", "<x@y.z> \r\n",
         "<x@y.z> SIZE=1 ", "<o'neil#1@shop.example> BODY=7BIT", "<受信者@example.jp>",
         "<a@b.example> <c@d>", "<a b@c>", "<@relay:a@b>", "<A@B.EXAMPLE>"]


@pytest.mark.parametrize("arg", CASES)
def test_addresses_read_as_aiosmtpd_reads_them(arg: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        theirs = SMTP(object(), loop=loop)
        ours = RelaySMTP(object(), loop=loop)
        assert ours._getaddr(arg) == theirs._getaddr(arg)
    finally:
        loop.close()
