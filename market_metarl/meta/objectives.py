"""What a policy is fitted to: the training and adaptation objective over a window's days.

Every pathwise learner (MAML's inner and outer loops, the pooled twin, fine-tune, scratch, RL^2)
turns a window's daily log returns of equity net of costs ``r_t`` (and the target weights that
made them) into one loss per task through :func:`task_objective`. Three objectives:

- ``log_return`` (the default): ``-mean_t r_t`` (in per cent). Its optimum is the log-optimal
  (Kelly) weight ``mu / sigma^2``, which for daily equity returns is far above 1: the weight sits
  at the leverage cap whatever the volatility, so this objective never rewards sizing by risk.
- ``mean_variance``: ``-(mean_t r_t - risk_aversion / 2 * var_t r_t)`` (in per cent). Log returns
  already carry the ``-sigma^2 / 2`` of the Kelly criterion, so the effective risk aversion is
  ``1 + risk_aversion``; the optimum weight ``mu / ((1 + risk_aversion) sigma^2)`` falls as the
  volatility rises.
- ``sharpe``: ``-sqrt(252) * mean_t r_t / std_t r_t``, the annualised Sharpe ratio of the window
  (Lim, Zohren & Roberts 2019; X-Trend, Wood et al. 2024). Scale-free in the weights: with
  volatility-scaled positions (``PolicySpec.vol_target``) the network chooses a direction and a
  conviction, the volatility target the size.

``turnover_bps`` charges every objective an extra ``turnover_bps`` basis points per unit of traded
weight ``sum_i |w_t,i - w_t-1,i|`` (targets, starting flat), on top of the trading costs already in
``r_t``: a regulariser against churning on noise, not a cost model (the env and the backtest
charge the real costs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from market_metarl.types import ConfigError

ObjectiveName = Literal["log_return", "sharpe", "mean_variance"]
OBJECTIVES: tuple[str, ...] = ("log_return", "sharpe", "mean_variance")

PNL_SCALE = 100.0
"""Losses in daily per cent, so gradients have a workable scale."""

SHARPE_STD_FLOOR = 1e-4
"""Daily standard deviation added (in quadrature) under the Sharpe objective's denominator: a flat
window has Sharpe 0 and a finite gradient instead of 0/0."""


@dataclass(frozen=True)
class Objective:
    """The objective of the pathwise learners (see the module docstring).

    Attributes:
        name: ``log_return``, ``sharpe`` or ``mean_variance``.
        risk_aversion: ``mean_variance``'s weight of the variance (>= 0; 0 is ``log_return``).
        turnover_bps: Extra charge per unit of traded weight, in basis points (>= 0).
    """

    name: ObjectiveName = "log_return"
    risk_aversion: float = 1.0
    turnover_bps: float = 0.0

    def __post_init__(self) -> None:
        """Reject an unknown name and negative or non-finite weights.

        Raises:
            ConfigError: The message names the ``train.*`` setting.
        """
        if self.name not in OBJECTIVES:
            raise ConfigError(
                f"train.objective must be one of {', '.join(map(repr, OBJECTIVES))}, "
                f"got {self.name!r}"
            )
        for key in ("risk_aversion", "turnover_bps"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"train.{key} must be a finite number >= 0, got {value!r}")

    @property
    def is_default(self) -> bool:
        """True for the plain mean log return (what every learner supports)."""
        return self.name == "log_return" and self.turnover_bps == 0


LOG_RETURN = Objective()
"""The default objective: mean daily log return, no turnover charge."""


def traded_weight(weights: torch.Tensor) -> torch.Tensor:
    """``sum_i |w_t,i - w_t-1,i|`` per day ``(B, D)`` of targets ``(B, D, N)``, starting flat."""
    prev = torch.cat([torch.zeros_like(weights[:, :1]), weights[:, :-1]], 1)
    return (weights - prev).abs().sum(-1)


def task_objective(
    rets: torch.Tensor, weights: torch.Tensor | None, objective: Objective = LOG_RETURN
) -> torch.Tensor:
    """Each task's loss ``(B,)`` from its daily log returns ``(B, D)`` (lower is better).

    Args:
        rets: Daily log returns of equity net of costs.
        weights: The target weights ``(B, D, N)`` that made them (read for ``turnover_bps``;
            may be None when it is 0).
        objective: Which objective.
    """
    if objective.turnover_bps:
        if weights is None:
            raise ValueError("the turnover charge needs the target weights")
        rets = rets - objective.turnover_bps * 1e-4 * traded_weight(weights.to(rets.dtype))
    mean = rets.mean(1)
    if objective.name == "log_return":
        return -mean * PNL_SCALE
    var = rets.var(1, unbiased=False)
    if objective.name == "mean_variance":
        return -(mean - 0.5 * objective.risk_aversion * var) * PNL_SCALE
    return -math.sqrt(252.0) * mean / torch.sqrt(var + SHARPE_STD_FLOOR**2)
