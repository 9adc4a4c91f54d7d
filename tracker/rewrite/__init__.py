"""Send-time rewriting: every http(s) link becomes a signed click URL, HTML gets one
open pixel, the unsubscribe placeholder becomes a signed ``/u/`` link, and every
other byte stays as the sender wrote it.

Compile once, fill per recipient: :mod:`tracker.rewrite.html` and
:mod:`tracker.rewrite.text` turn a body into literal segments and slots once
(cached by content in :mod:`tracker.rewrite.cache`; personalised copies derived
from the last compiled body by :mod:`tracker.rewrite.derive`);
:mod:`tracker.rewrite.engine` fills the slots with tokens for one recipient;
:mod:`tracker.rewrite.mime` does the same inside whole MIME messages, their
charsets read by :mod:`tracker.rewrite.charsets`; :mod:`tracker.rewrite.send` is
the thin async layer that mints delivery ids, checks suppressions and records
deliveries in bulk. HTML is read by the HTML standard's tokenizer
(:mod:`tracker.rewrite.tokenizer`, :mod:`tracker.rewrite.charrefs`).
"""

from tracker.rewrite.engine import MessageIds, Rewriter, Rewritten
from tracker.rewrite.errors import RewriteError
from tracker.rewrite.send import Recipient, Sender

__all__ = ["MessageIds", "Recipient", "RewriteError", "Rewriter", "Rewritten", "Sender"]
