"""What the daily step of a one-symbol and of a multi-asset account share: its result and ids."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from market_metarl.meta.contracts import Agent

if TYPE_CHECKING:
    from market_metarl.live.account import PaperSession
    from market_metarl.live.guardrails import GuardEvent


@dataclass(frozen=True)
class StepResult:
    """What a step did (``status`` is ``stepped``, ``noop`` or ``waiting``: not now, see message).

    A multi-asset account's step also gives each symbol's final weight in ``targets`` (its
    ``target``, ``adapted_target`` and ``pooled_target`` are the account's net totals).
    """

    date: str | None
    status: str
    message: str
    target: float | None = None
    policy: str | None = None
    adapted_target: float | None = None
    pooled_target: float | None = None
    adaptation_date: str | None = None
    equity: float | None = None
    cash: float | None = None
    fills: int = 0
    events: tuple[str, ...] = field(default=())
    targets: dict[str, float | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        d = asdict(self)
        d["events"] = list(self.events)
        return d


def client_id(account_id: str, day: dt.date, symbol: str) -> str:
    """The deterministic client order id of an account's order for ``symbol`` on ``day``."""
    return f"mmrl-{account_id}-{day:%Y%m%d}-{symbol}"


def state_hash(agent: Agent) -> str:
    """Hash of an adapted agent's task state (:meth:`~market_metarl.meta.contracts.Agent.task_state`).

    The names and the bytes of the arrays, in the order the agent returns them and in the dtype it
    returns (a gradient agent's parameters, RL^2's hidden state, PEARL's posterior mean...).
    """
    h = hashlib.sha256()
    for name, value in agent.task_state().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:16]


def bars_close(bars: pd.DataFrame) -> float:
    """The last close of ``bars``."""
    return float(bars["close"].iloc[-1])


class _Guarded(Protocol):
    """What both guardrail decisions (one symbol, an account) carry."""

    @property
    def killed(self) -> bool: ...
    @property
    def fallback(self) -> bool: ...
    @property
    def events(self) -> Sequence[GuardEvent]: ...


D = TypeVar("D", bound=_Guarded)
W = TypeVar("W")


def guard_recorded(
    session: PaperSession,
    day: str,
    decide: Callable[..., D],
    weights: tuple[W, W, W],
    mismatch: float,
) -> D:
    """``decide(cfg, killed, fallback, adapted, pooled, held, equity, shadow, peak, mismatch)``.

    One guardrail function for a one-symbol account (:func:`~market_metarl.live.guardrails.decide`,
    float weights) and an account (:func:`~market_metarl.live.guardrails.decide_account`,
    per-symbol weights): ``weights`` are the adapted, pooled and held ones. The guard state and
    the equity history are read from the ledger; the decision's events and any change of the
    kill switch or fallback are written back.
    """
    ledger, cfg = session.ledger, session.config
    killed, fallback = ledger.guard_state()
    history = ledger.equity_rows(limit=cfg.fallback_window + 1)
    decision = decide(
        cfg,
        killed,
        fallback,
        *weights,
        [r.equity for r in history],
        [r.pooled_equity or 0.0 for r in history],
        max(ledger.peak_equity(), session.account.initial_cash),
        mismatch,
    )
    for event in decision.events:
        ledger.insert_event(day, event.kind, event.detail)
    if (decision.killed, decision.fallback) != (killed, fallback):
        ledger.set_guard_state(decision.killed, decision.fallback, day)
    return decision
