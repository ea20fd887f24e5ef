"""How a multi-asset account splits its capital between symbols: one rule, causal.

A multi-asset account (paper trading, and the portfolio rolling backtest that checks it) runs the
rolling protocol on each symbol on its own: the adapted policy decides a *sleeve* weight ``s_i``
for symbol ``i`` as if it traded that symbol alone. The account then holds ``a_i * s_i`` of its
equity in symbol ``i``, where ``a`` is the capital split of the decision day (``sum a_i = 1``):

- ``equal``: ``a_i = 1 / N``;
- ``inverse_vol``: ``a_i`` proportional to ``1 / sigma_i``, ``sigma_i`` the sample standard
  deviation (``ddof=1``) of symbol ``i``'s daily close-to-close log returns over the last
  ``vol_window`` sessions ending at the decision day's close (``vol_window + 1`` closes, all dated
  ``<= t``: nothing after the decision is read).

The split is recomputed every decision day and the account is rebalanced to ``a * s`` at the next
open, like every target of the rolling protocol.
"""

from __future__ import annotations

import numpy as np

from market_metarl.types import ConfigError, DataError

ALLOCATIONS: tuple[str, ...] = ("equal", "inverse_vol")
"""The capital-split rules (``paper init --allocation``, ``[paper] allocation``)."""


def check_allocation(rule: str) -> None:
    """Refuse an unknown rule (the message lists the valid ones)."""
    if rule not in ALLOCATIONS:
        raise ConfigError(
            f"allocation must be one of {', '.join(ALLOCATIONS)}, got {rule!r}; "
            "e.g. --allocation equal"
        )


def closes_needed(rule: str, vol_window: int) -> int:
    """How many closes up to the decision day :func:`capital_split` reads (1 for ``equal``)."""
    return vol_window + 1 if rule == "inverse_vol" else 1


def capital_split(
    rule: str, closes: np.ndarray, vol_window: int, symbols: tuple[str, ...] = ()
) -> np.ndarray:
    """The capital split ``a`` ``(N,)`` of a decision day (see the module docstring).

    Args:
        rule: ``equal`` or ``inverse_vol``.
        closes: Closes ``(T, N)`` of the N symbols, oldest first, the decision day's close last;
            ``inverse_vol`` reads the last ``vol_window + 1`` rows.
        vol_window: Sessions of returns in the volatility estimate (``inverse_vol``).
        symbols: Names of the columns, for error messages.

    Raises:
        ConfigError: Unknown rule.
        DataError: Too few closes, or a symbol whose returns do not move (zero volatility).
    """
    check_allocation(rule)
    closes = np.asarray(closes, dtype=np.float64)
    n = closes.shape[1]
    if rule == "equal":
        return np.full(n, 1.0 / n)
    need = vol_window + 1
    if closes.shape[0] < need:
        raise DataError(
            f"inverse_vol allocation needs {need} closes up to the decision day, "
            f"only {closes.shape[0]} exist; start later or lower [paper] vol_window"
        )
    returns = np.diff(np.log(closes[-need:]), axis=0)
    sigma = returns.std(axis=0, ddof=1)
    if not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
        bad = [symbols[i] if i < len(symbols) else str(i) for i in np.flatnonzero(~(sigma > 0))]
        raise DataError(
            f"inverse_vol allocation: zero or undefined volatility for {', '.join(bad)} over the "
            f"last {vol_window} sessions; use --allocation equal or a longer vol_window"
        )
    inverse = 1.0 / sigma
    return inverse / inverse.sum()
