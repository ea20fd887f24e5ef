"""K (the adaptation days) is validated in one place, with one message, wherever it is given."""

from __future__ import annotations

import pytest
from meta_helpers import small_config

from market_metarl.live.settings import PaperConfig
from market_metarl.meta.contracts import MIN_ADAPT_DAYS, check_adapt_days
from market_metarl.meta.experiment import Experiment
from market_metarl.types import ConfigError

MESSAGE = "must be >= 2 (one support decision and the day it earns), got 1"


def test_one_bound_one_message() -> None:
    assert MIN_ADAPT_DAYS == 2 and check_adapt_days(2, "k") == 2
    with pytest.raises(ConfigError, match=r"^k must be >= 2"):
        check_adapt_days(1, "k")


def test_the_config_and_the_paper_settings_use_it() -> None:
    with pytest.raises(
        ConfigError, match=f"train.adapt_days {MESSAGE.replace('(', '.').replace(')', '.')}"
    ):
        Experiment.from_config(small_config(adapt_days=1))
    with pytest.raises(ConfigError, match=r"paper.adapt_days \(or 0"):
        PaperConfig(adapt_days=1)
    assert PaperConfig(adapt_days=0).adapt_days == 0  # 0: the run's own K
