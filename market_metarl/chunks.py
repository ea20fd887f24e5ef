"""Pieces of work and how a backend groups them: the piece-function type and chunking.

Every execution backend (:mod:`market_metarl.parallel`, :mod:`market_metarl.procpool`) runs a
*piece function* ``fn(shared, item) -> result`` over items, sending a contiguous run of items
(a chunk) to a worker at a time. How items are grouped only changes the transport, never the
arithmetic: a chunk's results are its pieces' results, in item order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

PieceFn = Callable[[Any, Any], Any]
"""``fn(shared, item) -> result``: one independent piece of work."""


def run_chunk(fn: PieceFn, shared: Any, items: Sequence[Any]) -> list[Any]:
    """A contiguous run of pieces, in item order (a chunk of one is a single piece).

    Args:
        fn: The piece function.
        shared: What every piece reads.
        items: What each piece owns, one per piece.

    Returns:
        ``[fn(shared, item) for item in items]``.
    """
    return [fn(shared, item) for item in items]


def split(n: int, chunks: int) -> list[range]:
    """``chunks`` contiguous, near-equal index ranges covering ``range(n)`` (none empty).

    Args:
        n: Number of items (at least 1).
        chunks: Ranges wanted; clipped to ``1..n``.

    Returns:
        The ranges, in order; their lengths differ by at most one.
    """
    chunks = max(1, min(chunks, n))
    size, extra = divmod(n, chunks)
    out, start = [], 0
    for c in range(chunks):
        stop = start + size + (1 if c < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out
