"""What identifies a run's settings: the resolved config (``config.toml``) and its digest.

``train --resume`` refuses a run whose digest differs from the config's, and a paper ledger
records the digest of the run it trades.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from market_metarl.config import to_table
from market_metarl.meta.experiment import Experiment, train_table


def resolved_config(exp: Experiment, learners: Sequence[str]) -> dict[str, Any]:
    """The experiment as a config table, every default filled in (``config.toml``).

    ``[train]`` carries the ``[train.<algo>]`` tables of the learners the run trains.
    """
    env = to_table(exp.env)
    features = env.pop("features")
    cfg = {
        "data": to_table(exp.tasks.data),
        "regimes": to_table(exp.tasks.regimes),
        "splits": to_table(exp.tasks.splits),
        "costs": to_table(exp.tasks.costs),
        "features": features,
        "env": env,
        "train": train_table(exp.train, learners),
    }
    for free in ("backtest", "paper"):  # tables read by later layers, kept as written
        if free in exp.config:
            cfg[free] = exp.config[free]
    return cfg


EXECUTION_SETTINGS: tuple[str, ...] = ("threads", "log_every", "tensorboard")
"""``[train]`` keys that say how a run executes, not what it computes: a run may resume with others."""


LATER_SETTINGS: dict[tuple[str, str], Any] = {
    ("features", "norm_return_horizons"): [],
    ("features", "macd_pairs"): [],
    ("features", "changepoint"): 0,
    ("features", "context"): [],
    ("features", "context_lookback"): 63,
    ("train", "vol_target"): 0.0,
    ("train", "objective"): "log_return",
    ("train", "risk_aversion"): 1.0,
    ("train", "turnover_bps"): 0.0,
    ("train", "select_on"): "none",
}
"""Settings added after runs were first written, and their defaults: left out of the digest while
at their default, so a run trained before they existed keeps its digest (it still resumes, and
its paper ledgers still match it); set to anything else, they change the digest."""


def config_digest(exp: Experiment, learners: Sequence[str]) -> str:
    """A short digest of the resolved config (resume refuses another config).

    :data:`EXECUTION_SETTINGS` are left out, as the backend is, and :data:`LATER_SETTINGS` while
    at their defaults; ``select_every`` is left out while ``select_on = "none"`` (unread then).
    """
    cfg = resolved_config(exp, learners)
    cfg["train"] = {k: v for k, v in cfg["train"].items() if k not in EXECUTION_SETTINGS}
    if cfg["train"].get("select_on") == "none":
        del cfg["train"]["select_every"]  # read only under select_on = "val"
    for (section, key), default in LATER_SETTINGS.items():
        if section in cfg and key in cfg[section] and _plain(cfg[section][key]) == default:
            del cfg[section][key]
    text = json.dumps(cfg, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (how a default compares with a resolved table's value)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
