"""Guardrails between the policy's target and the order: pure functions of the account's state.

In order, each decision day:

1. **Kill switch**: once tripped, no order is sent until ``paper reset`` (event ``halted``). It
   trips when equity falls more than ``max_drawdown`` below its peak: the account is flattened
   (target 0) and stops (event ``kill_switch``). It also trips when the broker's book differs from
   the ledger's by more than ``reconcile_tolerance`` of equity (a broker behind a network, e.g.
   Alpaca): then nothing is sent, not even a flattening order, since which book is right is
   unknown (event ``reconcile_kill``).
2. **Fallback to the pooled policy**: a shadow book follows the pooled (non-adapted) policy with
   the same accounting; when the account's log return over the last ``fallback_window`` days trails
   the shadow's by more than ``fallback_lag``, the account trades the pooled policy's target from
   then on, until ``paper reset`` (event ``fallback``).
3. **Max gross exposure**: ``|w|`` above ``max_gross`` is scaled down to it (event ``gross_clip``).
4. **Max daily turnover**: a change ``|w - held|`` above ``max_turnover`` is cut to it (event
   ``turnover_clip``).

Every event is recorded in the ledger by the step. A multi-asset account
(:func:`decide_account`) applies 1 and 2 to the whole account (its equity and its pooled shadow
book's), 3 and 4 to each symbol, then caps the account's gross exposure and turnover as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from market_metarl.live.settings import PaperConfig


@dataclass(frozen=True)
class GuardEvent:
    """A guardrail that acted: its kind and the numbers behind it."""

    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class GuardDecision:
    """What to send after the guardrails.

    Attributes:
        target: Final target weight, or None for no order (the kill switch holds).
        policy: Whose target it is: ``adapted``, ``pooled``, ``flat`` (kill switch) or ``halted``.
        killed: The kill switch state after this day.
        fallback: The fallback state after this day.
        events: The guardrail events of the day.
    """

    target: float | None
    policy: str
    killed: bool
    fallback: bool
    events: tuple[GuardEvent, ...] = field(default=())


def drawdown(equity: float, peak: float) -> float:
    """Fraction of the peak equity lost (0 at a new peak)."""
    return 0.0 if peak <= 0 else max(0.0, 1.0 - equity / peak)


def lag(account: Sequence[float], shadow: Sequence[float], window: int) -> float | None:
    """Log return of the account minus the shadow's over the last ``window`` days (None: too few)."""
    if len(account) < window + 1 or len(shadow) < window + 1:
        return None
    mine = math.log(account[-1] / account[-window - 1])
    theirs = math.log(shadow[-1] / shadow[-window - 1])
    return mine - theirs


def decide(
    cfg: PaperConfig,
    killed: bool,
    fallback: bool,
    adapted: float,
    pooled: float,
    held: float,
    equity: Sequence[float],
    shadow: Sequence[float],
    peak: float,
    mismatch: float = 0.0,
) -> GuardDecision:
    """Apply the guardrails to one decision day.

    Args:
        cfg: Guardrail settings.
        killed: Kill switch state before this day.
        fallback: Fallback state before this day.
        adapted: The adapted policy's target.
        pooled: The pooled policy's target for the account's book.
        held: Weight the account holds at this close.
        equity: The account's equity at each close, oldest first, this one last.
        shadow: The pooled shadow book's equity on the same days.
        peak: Highest equity so far (the initial cash included).
        mismatch: The broker's book against the ledger's, as a fraction of equity (0: agree).
    """
    if killed or mismatch > cfg.reconcile_tolerance:  # halted, or the broker disagrees
        detail = {} if killed else {"difference": mismatch, "limit": cfg.reconcile_tolerance}
        event = GuardEvent("halted" if killed else "reconcile_kill", detail)
        return GuardDecision(None, "halted", True, fallback, (event,))
    dd = drawdown(equity[-1], peak)
    if cfg.max_drawdown < 1.0 and dd > cfg.max_drawdown:
        event = GuardEvent(
            "kill_switch",
            {"drawdown": dd, "limit": cfg.max_drawdown, "equity": equity[-1], "peak": peak},
        )
        return GuardDecision(0.0, "flat", True, fallback, (event,))
    events: list[GuardEvent] = []
    if cfg.fallback and not fallback:
        behind = lag(equity, shadow, cfg.fallback_window)
        if behind is not None and behind < -cfg.fallback_lag:
            fallback = True
            events.append(
                GuardEvent(
                    "fallback",
                    {"lag": behind, "limit": cfg.fallback_lag, "window": cfg.fallback_window},
                )
            )
    policy, target = ("pooled", pooled) if fallback else ("adapted", adapted)
    if abs(target) > cfg.max_gross:
        clipped = math.copysign(cfg.max_gross, target)
        events.append(GuardEvent("gross_clip", {"target": target, "clipped": clipped}))
        target = clipped
    if abs(target - held) > cfg.max_turnover:
        clipped = held + math.copysign(cfg.max_turnover, target - held)
        events.append(GuardEvent("turnover_clip", {"target": target, "clipped": clipped}))
        target = clipped
    return GuardDecision(target, policy, False, fallback, tuple(events))


@dataclass(frozen=True)
class AccountDecision:
    """What a multi-asset account sends after the guardrails.

    Attributes:
        targets: Final account weight per symbol, or None for no order (the kill switch holds).
        policy: ``adapted``, ``pooled``, ``flat`` (kill switch) or ``halted``.
        killed: The kill switch state after this day.
        fallback: The fallback state after this day.
        events: The guardrail events of the day (a per-symbol event names its ``symbol``).
    """

    targets: dict[str, float] | None
    policy: str
    killed: bool
    fallback: bool
    events: tuple[GuardEvent, ...] = field(default=())


def decide_account(
    cfg: PaperConfig,
    killed: bool,
    fallback: bool,
    adapted: dict[str, float],
    pooled: dict[str, float],
    held: dict[str, float],
    equity: Sequence[float],
    shadow: Sequence[float],
    peak: float,
    mismatch: float = 0.0,
) -> AccountDecision:
    """The guardrails of a multi-asset account on one decision day.

    The kill switch (drawdown of the account's equity, or the broker's book against the ledger's)
    and the fallback (the account's return against its pooled shadow book's) act on the whole
    account, as in :func:`decide`. Then, per symbol, ``|w_i|`` above ``max_gross`` and
    ``|w_i - held_i|`` above ``max_turnover`` are cut (events ``gross_clip`` and
    ``turnover_clip`` with the symbol); then on the account, a gross exposure ``sum |w_i|`` above
    ``max_gross`` scales every weight down (``account_gross_clip``) and a turnover
    ``sum |w_i - held_i|`` above ``max_turnover`` scales every change down
    (``account_turnover_clip``). Weights are the account's (``a_i * s_i``), ``held`` at this close.

    Returns:
        An :class:`AccountDecision` (a halted or killed account: its ``targets`` None or all 0).
    """
    flat = {s: 0.0 for s in adapted}
    whole = decide(cfg, killed, fallback, 0.0, 0.0, 0.0, equity, shadow, peak, mismatch)
    if whole.target is None or whole.policy == "flat":  # halted, or the kill switch tripped
        targets = None if whole.target is None else flat
        return AccountDecision(targets, whole.policy, whole.killed, whole.fallback, whole.events)
    events = list(whole.events)
    policy, chosen = ("pooled", pooled) if whole.fallback else ("adapted", adapted)
    targets = {}
    for symbol, target in chosen.items():
        # the account-wide checks were done above: fallback=True skips the lag test here
        one = decide(cfg, False, True, target, target, held[symbol], equity, shadow, peak)
        events += [GuardEvent(e.kind, {**e.detail, "symbol": symbol}) for e in one.events]
        assert one.target is not None
        targets[symbol] = one.target
    gross = sum(abs(w) for w in targets.values())
    if gross > cfg.max_gross:
        scale = cfg.max_gross / gross
        targets = {s: w * scale for s, w in targets.items()}
        events.append(GuardEvent("account_gross_clip", {"gross": gross, "limit": cfg.max_gross}))
    turnover = sum(abs(w - held[s]) for s, w in targets.items())
    if turnover > cfg.max_turnover:
        scale = cfg.max_turnover / turnover
        targets = {s: held[s] + (w - held[s]) * scale for s, w in targets.items()}
        detail = {"turnover": turnover, "limit": cfg.max_turnover}
        events.append(GuardEvent("account_turnover_clip", detail))
    return AccountDecision(targets, policy, False, whole.fallback, tuple(events))
