"""market_metarl: meta-reinforcement learning that adapts trading strategies to new regimes.

From Python, ``import market_metarl as mm`` is the whole toolkit in a few names
(:mod:`market_metarl.api`)::

    bars = mm.load("bundled:SPY", start="2015-01-01")
    exp = mm.Experiment.from_toml("envs/default.toml", train={"iterations": 50})
    run = mm.train(exp, "maml")
    result = mm.run_backtest(run, "bundled:GOOG", protocol="rolling")
    account = mm.PaperAccount.init("paper.db", run, "bundled:SPY")

(``run_backtest``, not ``backtest``: that name is the layer :mod:`market_metarl.backtest`, which
``import market_metarl.backtest.runner`` must keep finding.) Those names are loaded on first use
(PEP 562 ``__getattr__``), and importing the package loads nothing heavier itself: no
Gymnasium, numpy, pandas or torch, so the command line starts fast.
Importing it registers the Gymnasium ids ``market_metarl/Trading-v0`` and
``market_metarl/Portfolio-v0`` (:mod:`market_metarl.envs.registration`), at once when Gymnasium is
loaded, else when it is first imported. The layers (``data``, ``envs``, ``meta``, ``backtest``,
``live``) are imported where they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from market_metarl._gym_hook import register_when_gymnasium_loads
from market_metarl._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads each name
    from market_metarl.api import (
        BacktestResult,
        PaperAccount,
        load,
        open_run,
        run_backtest,
        train,
    )
    from market_metarl.data.tasks import TaskSet
    from market_metarl.meta.contracts import Agent
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.run import TrainedRun
    from market_metarl.types import ConfigError, DataError, MarketMetaRLError, RunError

_HOMES: dict[str, str] = {
    "load": "market_metarl.api",
    "train": "market_metarl.api",
    "run_backtest": "market_metarl.api",
    "open_run": "market_metarl.api",
    "BacktestResult": "market_metarl.api",
    "PaperAccount": "market_metarl.api",
    "TaskSet": "market_metarl.data.tasks",
    "Experiment": "market_metarl.meta.experiment",
    "TrainedRun": "market_metarl.meta.run",
    "Agent": "market_metarl.meta.contracts",
    "MarketMetaRLError": "market_metarl.types",
    "ConfigError": "market_metarl.types",
    "DataError": "market_metarl.types",
    "RunError": "market_metarl.types",
}
"""The public names, each with the module it lives in (imported on first use)."""

__all__ = [
    "Agent",
    "BacktestResult",
    "ConfigError",
    "DataError",
    "Experiment",
    "MarketMetaRLError",
    "PaperAccount",
    "RunError",
    "TaskSet",
    "TrainedRun",
    "__version__",
    "load",
    "open_run",
    "run_backtest",
    "train",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept (PEP 562).

    Raises:
        AttributeError: ``name`` is not a public name nor a submodule already imported.
    """
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'market_metarl' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names with the public ones not loaded yet."""
    return sorted({*globals(), *__all__})


register_when_gymnasium_loads()
