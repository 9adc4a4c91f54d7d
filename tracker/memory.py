"""Giving memory back to the system after a large request.

A 10 MB batch briefly needs ~100 MB of Python objects. Once they are freed, the
allocators keep most of those pages for reuse, and what sits in reference cycles
waits for a full garbage collection, so the process would stay near its high-water
mark: a sender's one big batch, or a stranger's, would leave every worker large.
``trim_soon`` collects and asks glibc to return free pages (``malloc_trim``)
shortly after a large body, once, however many arrive.

A full collection walks every object; ``freeze_startup`` moves the tens of
thousands made at start (modules, parsers, pattern tables) out of its reach, so
it costs microseconds instead of tens of milliseconds of the event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc

#: seconds after a large body before memory is trimmed: time for its request to
#: finish and its objects to be freed
TRIM_DELAY = 1.0

_trim = None
_libc_name = ctypes.util.find_library("c")
if _libc_name:
    try:
        _libc = ctypes.CDLL(_libc_name)
        _trim = _libc.malloc_trim
    except (OSError, AttributeError):
        _trim = None
_scheduled: set[asyncio.AbstractEventLoop] = set()


def freeze_startup() -> None:
    """Exempt everything alive now from later collections (call once started)."""
    gc.collect()
    gc.freeze()


def trim_soon() -> None:
    """Collect and return free memory to the system ``TRIM_DELAY`` seconds from now."""
    loop = asyncio.get_running_loop()
    if loop in _scheduled:
        return
    _scheduled.add(loop)

    def trim() -> None:
        _scheduled.discard(loop)
        gc.collect()
        if _trim is not None:
            _trim(0)

    loop.call_later(TRIM_DELAY, trim)
