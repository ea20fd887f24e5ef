"""The fused step (numba loop, or numpy with preallocated buffers) equals the reference step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from env_bars import random_walk_bars

from market_metarl.envs.fused import FusedTradingEnv
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.vector_env import BatchedTradingEnv
from market_metarl.types import ConfigError, CostSpec

COSTS = CostSpec(fee_bps=2.0, slippage_bps=3.0, min_fee=2.0, impact_coef=0.1, borrow_bps_annual=50)
SPECS = {
    "discrete-dsr-random-start": EnvSpec(
        window=6, random_start=True, reward="differential_sharpe", include_time=True
    ),
    "continuous-drawdown": EnvSpec(
        window=4,
        action="continuous",
        max_leverage=2.0,
        reward="drawdown_penalised",
        max_drawdown=0.1,
    ),
    # more books than the kernel prefetches ahead, episodes of many lengths ending on many steps
    "discrete-log-return-many-books": EnvSpec(window=5, ruin_equity=0.9),
}
TASK_COUNTS = {"discrete-log-return-many-books": 13}


def _tasks(spec: EnvSpec, count: int = 5) -> list[Any]:
    if spec.action == "continuous":  # two assets per task, unequal lengths
        return [
            {
                s: random_walk_bars(80 + 20 * b, seed=10 * b + k, vol=0.03)
                for k, s in enumerate("XY")
            }
            for b in range(4)
        ]
    return [random_walk_bars(90 + 15 * b, seed=b, vol=0.02) for b in range(count)]


def _flat(result: tuple[Any, ...]) -> dict[str, np.ndarray]:
    obs, reward, terminated, truncated, infos = result
    return {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated} | infos


def _run_against_reference(spec: EnvSpec, kernel: str, steps: int = 500, count: int = 5) -> int:
    """Step both envs on the same random actions; returns the episode ends seen."""
    tasks = _tasks(spec, count)
    ref = BatchedTradingEnv.from_bars(tasks, spec, COSTS)
    fused = FusedTradingEnv.from_bars(tasks, spec, COSTS, kernel=kernel)
    assert fused.kernel == kernel
    first_ref, first_fused = ref.reset(seed=7), fused.reset(seed=7)
    np.testing.assert_array_equal(first_ref[0], first_fused[0])
    ref.action_space.seed(1)
    ends = 0
    for k in range(steps):
        if k == steps // 2:  # a reset mid-run, of every task at once
            for r in (ref.reset(seed=11), fused.reset(seed=11)):
                assert r[1]["equity"].tolist() == [100_000.0] * ref.num_envs
        actions = ref.action_space.sample()
        want, got = _flat(ref.step(actions)), _flat(fused.step(actions))
        assert want.keys() == got.keys()
        for key, value in want.items():
            if key == "reward" and kernel == "numba":  # libm's log against numpy's: 1 ulp
                np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-15)
            else:
                np.testing.assert_array_equal(got[key], value, err_msg=f"{key} at step {k}")
        ends += int((want["terminated"] | want["truncated"]).sum())
    np.testing.assert_allclose(fused.sim.costs_paid, ref.sim.costs_paid, rtol=1e-12)
    return ends


@pytest.mark.parametrize("name", list(SPECS))
def test_numpy_kernel_equals_reference_bit_for_bit(name: str) -> None:
    ends = _run_against_reference(SPECS[name], "numpy", count=TASK_COUNTS.get(name, 5))
    assert ends >= 8  # episodes ended (truncation, and drawdown stops) and were autoreset


@pytest.mark.parametrize("name", list(SPECS))
def test_numba_kernel_equals_reference(name: str) -> None:
    pytest.importorskip("numba")
    assert _run_against_reference(SPECS[name], "numba", count=TASK_COUNTS.get(name, 5)) >= 8


@pytest.mark.parametrize("kernel", ["numpy", "numba"])
def test_out_of_range_action_raises_and_leaves_state(kernel: str) -> None:
    if kernel == "numba":
        pytest.importorskip("numba")
    env = FusedTradingEnv.from_bars(
        [random_walk_bars(80, seed=1), random_walk_bars(80, seed=2)],
        EnvSpec(window=3),
        kernel=kernel,
    )
    env.reset(seed=0)
    t_before = env.sim.t.copy()
    with pytest.raises(IndexError):
        env.step(np.array([1, 3]))
    np.testing.assert_array_equal(env.sim.t, t_before)


def test_unknown_kernel_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="kernel"):
        FusedTradingEnv.from_bars([random_walk_bars(80)], EnvSpec(window=3), kernel="gpu")


def test_infos_carry_gymnasium_masks() -> None:
    from gymnasium.wrappers.vector import DictInfoToList

    env = FusedTradingEnv.from_bars(
        [random_walk_bars(80, seed=1), random_walk_bars(90, seed=2)],
        EnvSpec(window=3),
        kernel="numpy",
    )
    _, infos = env.reset(seed=0)
    assert all(infos[f"_{k}"].tolist() == [True, True] for k in ("date", "equity", "cost"))
    listed = DictInfoToList(env)
    listed.reset(seed=0)
    *_, info_list = listed.step(np.array([2, 0]))
    assert len(info_list) == 2
    assert set(info_list[1]) == {"date", "equity", "position", "cost", "turnover"}
    assert info_list[0]["cost"] > 0 and info_list[1]["position"][0] < 0  # long 1, short -1


@pytest.mark.parametrize("engine", ["reference", "fused"])
def test_make_vec_returns_the_batched_env(engine: str) -> None:
    import gymnasium as gym

    import market_metarl  # noqa: F401  (registers the ids)

    env = gym.make_vec(
        "market_metarl/Trading-v0",
        num_envs=8,
        vectorization_mode="vector_entry_point",
        window=5,
        fee_bps=3.0,
        engine=engine,
    )
    expected = FusedTradingEnv if engine == "fused" else BatchedTradingEnv
    assert type(env) is expected and env.num_envs == 8
    assert env.cost_spec.fee_bps == 3.0 and env.env_spec.window == 5
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8, env.observations.dim)
    _, reward, *_ = env.step(np.array([0, 1, 2, 0, 1, 2, 0, 1]))
    assert reward.shape == (8,) and reward[1] == reward[4] == reward[7]  # same task, same action


@pytest.mark.parametrize("kernel", ["numpy", "numba"])
def test_each_step_returns_fresh_arrays(kernel: str) -> None:
    """A later step (or an autoreset) never changes what an earlier step returned."""
    if kernel == "numba":
        pytest.importorskip("numba")
    env = FusedTradingEnv.from_bars(
        [random_walk_bars(80, seed=1), random_walk_bars(90, seed=2)],
        EnvSpec(window=3),
        kernel=kernel,
    )
    env.reset(seed=0)
    kept, copies = [], []
    for k in range(60):  # past both tasks' ends: autoresets included
        result = _flat(env.step(np.array([k % 3, (k + 1) % 3])))
        kept.append(result)
        copies.append({key: value.copy() for key, value in result.items()})
    for result, copy in zip(kept, copies, strict=True):
        for key, value in copy.items():
            np.testing.assert_array_equal(result[key], value, err_msg=key)
    assert kept[0]["obs"] is not kept[1]["obs"]


def test_numpy_kernel_is_used_where_numba_does_not_import() -> None:
    """Without the `fast` extra, kernel="auto" falls back to numpy and still steps."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "sys.path.insert(0, 'tests/envs')\n"
        "from env_bars import random_walk_bars\n"
        "from market_metarl.envs.fused import FusedTradingEnv\n"
        "from market_metarl.envs.spec import EnvSpec\n"
        "env = FusedTradingEnv.from_bars([random_walk_bars(90)], EnvSpec(window=3))\n"
        "env.reset(seed=0)\n"
        "obs, reward, *_ = env.step(np.array([2]))\n"
        "print(env.kernel, obs.shape, np.isfinite(reward).all())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],  # the code's paths are from the repository root
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "numpy" and done.stdout.strip().endswith("True")
