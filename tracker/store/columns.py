"""Rows turned into the column arrays that ``unnest($1::t1[], $2::t2[], ...)`` takes.

Rollups send a batch's aggregates as one statement per table: a list of arrays, one
per column, rather than one statement per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """The first ``width`` columns of ``rows``, each as a list."""
    return [[r[i] for r in rows] for i in range(width)]
