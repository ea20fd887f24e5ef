"""Cross-asset context through a config: it trains, reopens from ``tasks.json`` with its columns,
the agent's action at ``t`` ignores the context assets' later bars, and the config is checked
(held-out context assets, warm-up, the grid preset)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from market_metarl.config import build, read_toml
from market_metarl.data.context import CONTEXT_PRESETS
from market_metarl.data.sources import load_bars
from market_metarl.data.tasks import DataSection, check_warmup_days
from market_metarl.data.universe import symbol_name
from market_metarl.envs.spec import env_spec_from_config
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.sweep import combinations, parse_grid, with_settings
from market_metarl.meta.trainer import train
from market_metarl.types import ConfigError

ROOT = Path(__file__).resolve().parents[2]

CONTEXT_RUN = """
[data]
symbols = ["SPY"]
warmup_days = 70

[regimes]
method = "window"
min_length = 126
min_task_days = 60
params = { length = 126 }

[splits]
train = ["2010-01-04", "2012-12-31"]
test = ["2013-02-01", "2013-12-31"]
embargo_days = 20

[features]
momentum_horizons = [5]
context_lookback = 63

[env]
window = 3
action = "continuous"

[train]
iterations = 2
adapt_days = 10
horizon = 20
hidden = 8
checkpoint_every = 2

[train.maml]
batch = 2

[train.pooled]
batch = 2
"""


def write_context(folder: Path, tweak: Any = None) -> list[str]:
    """QQQ (from 2011-03: starts inside training) and IWM as csv files; their source specs."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for symbol in ("QQQ", "IWM"):
        bars = load_bars(f"bundled:{symbol}").loc["2005-01-01":"2014-06-30"]
        if tweak is not None:
            bars = tweak(symbol, bars)
        path = folder / f"{symbol.lower()}.csv"
        path.write_text(bars.to_csv(float_format="%.10g"))
        specs.append(f"csv:{path}?name={symbol}")
    return specs


def context_config(context: list[str], **data: Any) -> dict[str, Any]:
    cfg = tomllib.loads(CONTEXT_RUN)
    cfg["features"]["context"] = context
    cfg["data"] |= data
    return cfg


@pytest.fixture(scope="module")
def context_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Experiment, Path, list[str]]:
    root = tmp_path_factory.mktemp("context")
    specs = write_context(root / "ctx")
    exp = Experiment.from_config(context_config(specs))
    return exp, train(exp, "maml", root / "run", seed=0), specs


def test_context_columns_are_observed_and_survive_a_save_and_open(
    context_run: tuple[Experiment, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    exp, run_dir, specs = context_run
    names = exp.env.features.names()
    assert names[-12:-10] == ["ctx_QQQ_nret_1", "ctx_QQQ_nret_5"] and len(names) == 5 + 12
    markets = exp.markets(exp.tasks.split("train"))
    live_qqq = np.concatenate(
        [m.features[m.first :, 0, names.index("ctx_QQQ_live")] for m in markets]
    )
    assert 0 < live_qqq.mean() < 1  # QQQ's file starts in 2011: masked before, live after

    def refuse(*_: Any) -> Any:
        raise AssertionError("the tasks were rebuilt")

    monkeypatch.setattr("market_metarl.data.tasks._symbol_tasks", refuse)
    run = TrainedRun.open(run_dir)
    assert run.experiment.env.features == exp.env.features
    assert run.experiment.env.features.context == tuple(specs)
    assert run.experiment.tasks.tasks == exp.tasks.tasks
    for a, b in zip(
        run.experiment.markets(exp.tasks.split("test")),
        exp.markets(exp.tasks.split("test")),
        strict=True,
    ):
        assert np.array_equal(a.features, b.features) and a.features.shape[2] == len(names)


def scale_after(day: pd.Timestamp, seed: int) -> Any:
    def tweak(symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
        rng = np.random.default_rng(seed + len(symbol))
        out = bars.copy()
        after = out.index > day
        noise = np.exp(rng.normal(0.0, 0.05, after.sum()))  # one factor per day: valid bars
        for col in ("open", "high", "low", "close"):
            out.loc[after, col] *= noise
        out = out.drop(out.index[after][[1, 4, 9]])  # days removed after t
        extra = out.iloc[[-1]].copy()  # and one added (a Saturday)
        extra.index = pd.DatetimeIndex([out.index[-1] + pd.Timedelta(days=1)], name="date")
        return pd.concat([out, extra])

    return tweak


def bump_before(day: pd.Timestamp) -> Any:
    def tweak(symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
        out = bars.copy()
        if symbol == "IWM":
            out.loc[out.index[out.index < day][-2], ["open", "high", "low", "close"]] *= 1.02
        return out

    return tweak


def obs_and_action(run_dir: Path, specs: list[str] | None, day: pd.Timestamp) -> tuple[Any, Any]:
    overrides = None
    if specs is not None:
        cfg = read_toml(run_dir / "config.toml")
        overrides = {"features": cfg["features"] | {"context": specs}}
    run = TrainedRun.open(run_dir, overrides)
    view = run.market_view(load_bars("bundled:SPY").loc[:"2014-06-30"], "SPY")
    t = view.row(day)
    assert view.dates[t] == day
    obs = view.episode.obs[0, t].numpy().copy()
    agent = run.agent("adapted")
    agent.init()
    return obs, np.asarray(agent.act(obs, 0.0))


def test_the_action_at_t_ignores_the_context_assets_later_bars_bit_for_bit(
    context_run: tuple[Experiment, Path, list[str]], tmp_path: Path
) -> None:
    _, run_dir, _ = context_run
    day = pd.Timestamp("2013-06-14")
    obs, act = obs_and_action(run_dir, None, day)
    later = write_context(tmp_path / "later", scale_after(day, 0))
    obs2, act2 = obs_and_action(run_dir, later, day)
    assert obs.tobytes() == obs2.tobytes() and act.tobytes() == act2.tobytes()
    # the same perturbation one day earlier reaches day t's observation (so the test can fail)
    moved = write_context(tmp_path / "moved", scale_after(day - pd.Timedelta(days=1), 0))
    obs3, _ = obs_and_action(run_dir, moved, day)
    assert obs3.tobytes() != obs.tobytes()
    before = write_context(tmp_path / "before", bump_before(day))
    obs4, act4 = obs_and_action(run_dir, before, day)
    assert obs4.tobytes() != obs.tobytes() and act4.tobytes() != act.tobytes()


def test_bare_context_symbols_resolve_with_the_data_source() -> None:
    exp = Experiment.from_config(context_config(["IWM", "bundled:EEM"]))
    assert exp.env.features.context == ("bundled:IWM", "bundled:EEM")


def test_a_held_out_asset_is_refused_as_context() -> None:
    cfg = context_config(["IWM", "EEM"], heldout_symbols=["EEM"])
    with pytest.raises(ConfigError, match=r"features.context \['bundled:EEM'\] names held-out"):
        Experiment.from_config(cfg)


def test_a_warmup_shorter_than_the_context_lookback_is_refused() -> None:
    cfg = context_config(["IWM"])
    cfg["features"]["context_lookback"] = 126
    with pytest.raises(ConfigError, match=r"warmup_days = 70 is too short.*>= 128 in \[data\]"):
        Experiment.from_config(cfg)


def test_the_macro_preset_reaches_real_toml_through_a_grid_and_leaks_no_held_out_asset() -> None:
    base = read_toml(ROOT / "envs" / "real.toml")
    (settings,) = combinations(parse_grid(["features.context=macro"]))
    assert settings == {"features.context": "macro"}  # a grid value cannot be a list
    cfg = with_settings(base, settings)
    env = env_spec_from_config(cfg)
    assert env.features.context_specs == CONTEXT_PRESETS["macro"]
    data = build(DataSection, cfg["data"], "data")
    check_warmup_days(data, env.features, env.window)  # real.toml's warm-up covers the default
    names = {symbol_name(s) for s in env.features.context_specs}
    held = {symbol_name(s) for s in data.heldout_symbols}
    assert names == {"SPY", "QQQ", "XLF", "IEF", "SHY", "LQD"}
    assert not names & held and not names & set(data.exclude)


def test_a_gym_env_reads_the_context_columns_in_its_observation() -> None:
    import gymnasium as gym

    import market_metarl  # noqa: F401  (registers the ids)
    from market_metarl.data.features import FeatureSpec

    spec = FeatureSpec(context=("IWM", "bundled:QQQ"))
    names = spec.names()
    env = gym.make(
        "market_metarl/Trading-v0",
        symbol="SPY",
        start="2011-04-01",
        end="2011-09-30",
        window=2,
        action="continuous",
        features=spec,
    )
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1 + 2 * len(names),)
    today = obs[1 + len(names) :]
    # QQQ's bundled bars start 2011-03-23: not live yet in April (warm-up), IWM is
    assert today[names.index("ctx_IWM_live")] == 1.0 and today[names.index("ctx_QQQ_live")] == 0.0
    assert today[names.index("ctx_mean_21")] == today[names.index("ctx_IWM_nret_21")] != 0.0
    env.close()
