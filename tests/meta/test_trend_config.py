"""The trend features through a config: warm-up refused when short, observed by name, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from market_metarl.config import build, read_toml, to_table
from market_metarl.data.features import FeatureSpec
from market_metarl.data.tasks import DataSection, check_warmup_days
from market_metarl.envs.spec import env_spec_from_config
from market_metarl.meta.episodes import feature_index, market_arrays
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.rundir import write_toml
from market_metarl.types import ConfigError
from tests.meta.meta_helpers import small_config

ENVS = Path(__file__).resolve().parents[2] / "envs"


def trend_config(warmup_days: int) -> dict[str, object]:
    cfg = small_config()
    cfg["features"] |= {
        "vol_window": 10,
        "return_lags": 1,
        "norm_return_horizons": [1, 5],
        "changepoint": 20,
    }
    cfg["env"]["window"] = 3
    cfg["data"]["warmup_days"] = warmup_days
    return cfg


def test_a_config_whose_warmup_is_shorter_than_the_features_need_is_refused() -> None:
    # nret_h needs 60 bars of returns for its volatility, and the window adds 2 more days
    with pytest.raises(ConfigError, match=r"data.warmup_days = 2 is too short.*>= 62 in \[data\]"):
        Experiment.from_config(trend_config(2))


@pytest.mark.parametrize("name", ["default.toml", "real.toml", "synthetic.toml"])
def test_the_shipped_configs_give_their_features_enough_warmup(name: str) -> None:
    cfg = read_toml(ENVS / name)
    env = env_spec_from_config(cfg)
    check_warmup_days(build(DataSection, cfg.get("data"), "data"), env.features, env.window)


def test_trend_features_reach_the_observation_by_name() -> None:
    exp = Experiment.from_config(trend_config(62))
    names = exp.env.features.names()
    assert names == ["log_ret", "vol", "ret_lag1", "nret_1", "nret_5", "cp_score", "cp_loc"]
    market = exp.markets(exp.tasks.split("train")[:1])[0]
    assert market.features.shape[1:] == (1, len(names))
    obs, _, _ = market_arrays(market, exp.env)
    for name in ("nret_5", "cp_score"):
        for lag in (0, 2):
            col = obs[:, feature_index(exp.env, 1, name, lag=lag)]
            rows = np.arange(market.first, market.last) - lag
            np.testing.assert_array_equal(col, market.features[rows, 0, names.index(name)])
    first_window = market.features[market.first - 2 : market.first + 1, 0]
    assert np.isfinite(first_window).all() and (first_window[:, 3:5] != 0).all()


def test_the_run_config_round_trips_the_trend_keys(tmp_path: Path) -> None:
    spec = FeatureSpec(
        norm_return_horizons=(1, 21, 252), macd_pairs=((8, 24), (32, 96)), changepoint=63
    )
    write_toml(tmp_path / "config.toml", {"features": to_table(spec)})
    text = (tmp_path / "config.toml").read_text()
    assert "macd_pairs = [[8, 24], [32, 96]]" in text
    again = build(FeatureSpec, read_toml(tmp_path / "config.toml")["features"], "features")
    assert again == spec
