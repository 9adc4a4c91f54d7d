"""The one exception the rewriting engine raises for bad input."""

from __future__ import annotations


class RewriteError(ValueError):
    """The message cannot be rewritten as given; the text says what is wrong and how
    to fix it (shown verbatim by the API and the CLI)."""
