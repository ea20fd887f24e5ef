"""Fixtures of the paper-trading tests: tiny trained runs (synthetic tasks, a few iterations)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pytest

SMALL_CONFIG: dict[str, Any] = {
    "data": {"symbols": ["synthetic:ar-regimes?seed=1&tasks=60&days=71"], "warmup_days": 2},
    "regimes": {"method": "known", "min_task_days": 71},
    "splits": {
        "train": ["2000-01-01", "2009-12-31"],
        "test": ["2010-03-01", "2019-12-31"],
        "embargo_days": 20,
    },
    "costs": {"fee_bps": 1.0, "slippage_bps": 2.0, "borrow_bps_annual": 50.0},
    "features": {"vol_window": 0, "momentum_horizons": [], "volume_window": 0, "drawdown": False},
    "env": {"window": 2, "action": "continuous", "max_drawdown": 1.0},
    "train": {"iterations": 3, "checkpoint_every": 3, "position_input": True, "adapt_days": 10},
    "paper": {
        # rolling: adapt on the last 10 days every 5 days; guardrails that never bind
        "every": 5,
        "max_gross": 10.0,
        "max_turnover": 10.0,
        "max_drawdown": 1.0,
        "fallback": False,
    },
}
"""A tiny synthetic task distribution (trains in seconds) with a never-binding ``[paper]`` table."""


def train_run(
    out: Path,
    algo: str = "maml",
    paper: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> Path:
    """Train a tiny run into ``out`` in-process (``train``: keys merged into ``[train]``; a dict
    value is an algorithm table, e.g. ``{"pearl": {"iterations": 3}}``)."""
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.trainer import train as train_

    cfg = copy.deepcopy(SMALL_CONFIG)
    if paper is not None:
        cfg["paper"] = paper
    cfg["train"].update(train or {})
    return train_(Experiment.from_config(cfg), algo, out)


@pytest.fixture(scope="session")
def maml_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained MAML run (and its pooled baseline) whose guardrails never bind."""
    return train_run(tmp_path_factory.mktemp("runs") / "maml")


@pytest.fixture(scope="session")
def rl2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained RL^2 run whose guardrails never bind."""
    return train_run(tmp_path_factory.mktemp("runs") / "rl2", "rl2")


PEARL_TRAIN: dict[str, Any] = {"pearl": {"iterations": 3}}
"""PEARL's own budget (its default is 1500 updates, not ``iterations``): a few updates suffice."""


@pytest.fixture(scope="session")
def pearl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained PEARL run (tiny budget) whose guardrails never bind."""
    return train_run(tmp_path_factory.mktemp("runs") / "pearl", "pearl", train=PEARL_TRAIN)


@pytest.fixture
def fake_alpaca(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake Alpaca API on 127.0.0.1 (``alpaca_fake.FakeAlpaca``), with keys and its URL in the
    environment; any HTTP request to another host, or an Alpaca client built for one, fails."""
    import requests.adapters
    from alpaca_fake import FakeAlpaca

    from market_metarl.data.sources import load_bars
    from market_metarl.live import alpaca_client

    fake = FakeAlpaca(pd.DatetimeIndex(load_bars("bundled:SPY").index).date).start()
    monkeypatch.setenv(alpaca_client.KEY_ENV, "PKFAKEKEY")
    monkeypatch.setenv(alpaca_client.SECRET_ENV, "fake-secret")
    monkeypatch.setenv(alpaca_client.URL_ENV, fake.url)
    monkeypatch.setenv(alpaca_client.DATA_URL_ENV, fake.url)
    send, open_clients = requests.adapters.HTTPAdapter.send, alpaca_client.open_clients

    def local_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        assert urlparse(request.url).hostname == "127.0.0.1", f"a test called {request.url}"
        return send(self, request, *args, **kwargs)

    def local_clients(*args: Any, **kwargs: Any) -> Any:
        clients = open_clients(*args, **kwargs)
        assert urlparse(clients.url).hostname == "127.0.0.1", f"an Alpaca client for {clients.url}"
        return clients

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", local_send)
    monkeypatch.setattr(alpaca_client, "open_clients", local_clients)
    try:
        yield fake
    finally:
        fake.stop()
