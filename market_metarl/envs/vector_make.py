"""The vector entry point of ``market_metarl/Trading-v0``: ``gym.make_vec`` builds a batched env.

Kept apart from :mod:`market_metarl.envs.vector_env` because it may build either the reference
:class:`~market_metarl.envs.vector_env.BatchedTradingEnv` or the
:class:`~market_metarl.envs.fused.FusedTradingEnv` built on it.
"""

from __future__ import annotations

from typing import Any

from market_metarl.envs.fused import FusedTradingEnv
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.vector_env import BatchedTradingEnv
from market_metarl.types import ConfigError, CostSpec, TaskSpec


def default_batched_env(
    num_envs: int = 1,
    task: TaskSpec | None = None,
    env_spec: EnvSpec | None = None,
    costs: CostSpec | None = None,
    engine: str = "reference",
    **kwargs: Any,
) -> BatchedTradingEnv:
    """Vector entry point of ``market_metarl/Trading-v0``: ``num_envs`` books on one task.

    ``gym.make_vec("market_metarl/Trading-v0", num_envs=8)`` (or with
    ``vectorization_mode="vector_entry_point"``) returns this env instead of a SyncVectorEnv of 8
    :class:`TradingEnv`: the same task, keywords and NEXT_STEP autoreset, stepped as arrays.
    ``engine="fused"`` gives a :class:`~market_metarl.envs.fused.FusedTradingEnv`. Pass
    ``vectorization_mode="sync"`` for Gymnasium's own vectorisation of the single env.

    Raises:
        ConfigError: As :func:`~market_metarl.envs.trading_env.default_trading_env`, or an unknown
            ``engine``.
    """
    from market_metarl.envs.make import TRADING_TASK_KEYS, fold_kwargs, trading_task
    from market_metarl.envs.registration import TRADING_ID
    from market_metarl.envs.trading_env import DEFAULT_TRADING_TASK

    if engine not in ("reference", "fused"):
        raise ConfigError(f"engine must be 'reference' or 'fused', got {engine!r}")
    kwargs.pop("render_mode", None)  # the batched env does not render
    records = {"task": task, "env_spec": env_spec, "costs": costs}
    base_costs = task.costs if task is not None else CostSpec()
    args = fold_kwargs(TRADING_ID, kwargs, records, TRADING_TASK_KEYS, EnvSpec(), base_costs)
    if args.task_kwargs:
        task = trading_task(args.task_kwargs, DEFAULT_TRADING_TASK)
    task = task or DEFAULT_TRADING_TASK
    spec = args.env_spec or EnvSpec()
    market = TaskMarket.from_tasks(task, spec.features, spec.window)
    if engine == "fused":
        return FusedTradingEnv([market] * num_envs, spec, args.costs or task.costs)
    return BatchedTradingEnv([market] * num_envs, spec, args.costs or task.costs)
