"""Env throughput: our single env and batched env against gym-anytrading's StocksEnv.

All three run in the same process on the same price series (bundled SPY when the data layer can
load it, else a synthetic random walk of the same length; the output says which), with random
actions drawn beforehand (so no env pays for sampling) and a reset whenever an episode ends.
gym-anytrading returns a view of its feature array as observation; it is copied here, as our envs
return copies. It is only a speed reference: it has no costs model beyond a flat fee, no cash
accounting and no causal feature windows.

The fused step (:class:`FusedTradingEnv`: numba when installed, else numpy with preallocated
buffers) is timed against the reference batched step at B=128 and B=1024 on the same actions, in
interleaved rounds (A/B, B/A, ...); ``fused_vs_batched`` is the median of the per-round ratios.

Run: ``.venv/bin/python benchmarks/env_throughput.py`` (about a minute; ``--quick`` for a busy
machine). The last line printed is one JSON object with the figures and the ratios.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.envs.fused import FusedTradingEnv
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import TradingEnv
from market_metarl.envs.vector_env import BatchedTradingEnv

WINDOW = 32
BATCH = 1024
TASK_DAYS = 252


def load_series() -> tuple[pd.DataFrame, str]:
    """Bundled SPY if the data layer provides it, else a synthetic series of the same length."""
    try:
        from market_metarl.data.sources import load_bars

        return load_bars("bundled:SPY"), "bundled:SPY"
    except Exception as exc:  # the benchmark must run even without the data layer
        from market_metarl.data.bars import validate_bars

        n = 5849
        rng = np.random.default_rng(0)
        close = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.012, n)))
        opens = close * np.exp(rng.normal(0, 0.004, n))
        frame = pd.DataFrame(
            {
                "open": opens,
                "high": np.maximum(opens, close) * 1.002,
                "low": np.minimum(opens, close) * 0.998,
                "close": close,
                "volume": rng.lognormal(17, 0.3, n),
            },
            index=pd.bdate_range("1998-01-02", periods=n, name="date"),
        )
        return validate_bars(frame)[0], f"synthetic random walk, {n} days ({exc})"


def timed(fn: Callable[[], int], min_seconds: float) -> float:
    """Steps per second of ``fn`` (which returns the steps it ran), repeated for ``min_seconds``."""
    fn()  # warm up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        steps += fn()
    return steps / (time.perf_counter() - start)


def single_env_rate(bars: pd.DataFrame, steps: int, seconds: float) -> float:
    env = TradingEnv.from_bars(bars, EnvSpec(window=WINDOW))
    actions = np.random.default_rng(1).integers(0, 3, steps).tolist()
    env.reset(seed=0)

    def run() -> int:
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        return len(actions)

    return timed(run, seconds)


def anytrading_rate(bars: pd.DataFrame, steps: int, seconds: float) -> float:
    from gym_anytrading.envs import StocksEnv

    frame = pd.DataFrame({"Close": bars["close"].to_numpy()})
    env = StocksEnv(frame, window_size=WINDOW, frame_bound=(WINDOW, len(frame)))
    actions = np.random.default_rng(1).integers(0, 2, steps).tolist()
    env.reset(seed=0)

    def run() -> int:
        for a in actions:
            obs, _, terminated, truncated, _ = env.step(a)
            obs = obs.copy()
            if terminated or truncated:
                env.reset()
        return len(actions)

    return timed(run, seconds)


def batch_tasks(bars: pd.DataFrame, batch: int) -> list[TaskMarket]:
    """``batch`` tasks of TASK_DAYS days each, spread evenly over the series."""
    spec = EnvSpec(window=WINDOW)
    full = TaskMarket.from_bars(bars, spec.features, WINDOW)
    warm = WINDOW - 1 + spec.features.warmup
    starts = np.linspace(full.first, full.last - TASK_DAYS, batch).astype(int)
    return [full.sub(int(s), int(s) + TASK_DAYS, warm) for s in starts]


def fused_vs_batched(bars: pd.DataFrame, batch: int, rounds: int, steps: int) -> dict[str, Any]:
    """Env-steps/s of the reference and the fused step, timed in interleaved rounds.

    Each round times ``steps`` steps of one env, then of the other (A/B, then B/A the next round,
    so neither always runs first), and the fused/reference ratio of that round is kept: the pair
    shares whatever else the machine is doing, so the median of the paired ratios holds better on
    a busy machine than either rate. Wall-clock is the measure; the process CPU time of the same
    rounds is reported beside it (it leaves out the time other processes held the cores).
    """
    tasks = batch_tasks(bars, batch)
    spec = EnvSpec(window=WINDOW)
    envs = {"batched": BatchedTradingEnv(tasks, spec), "fused": FusedTradingEnv(tasks, spec)}
    actions = np.random.default_rng(1).integers(0, 3, (steps, batch))
    wall: dict[str, list[float]] = {name: [] for name in envs}
    cpu: dict[str, list[float]] = {name: [] for name in envs}
    for env in envs.values():
        env.reset(seed=0)
        for a in actions[:5]:  # warm-up (numba compiles or loads its cache on the first call)
            env.step(a)
    for k in range(rounds):
        for name in ("batched", "fused") if k % 2 == 0 else ("fused", "batched"):
            env = envs[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            for a in actions:
                env.step(a)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    fused = envs["fused"]
    assert isinstance(fused, FusedTradingEnv)
    return {
        "batched": steps * batch / float(np.median(wall["batched"])),
        "fused": steps * batch / float(np.median(wall["fused"])),
        "ratio": float(np.median(np.divide(wall["batched"], wall["fused"]))),
        "ratio_cpu": float(np.median(np.divide(cpu["batched"], cpu["fused"]))),
        "ratios": np.divide(wall["batched"], wall["fused"]).round(2).tolist(),
        "kernel": fused.kernel,
    }


def torch_rates(bars: pd.DataFrame, steps: int = 50) -> dict[str, float]:
    """Env-steps/s of TorchBatchedTradingEnv on CUDA at B = 16384, 262144, 1048576.

    The books are replicas of BATCH tasks (each book its own state); the clock stops after
    ``torch.cuda.synchronize()``, so queued kernels are counted.
    """
    import torch

    from market_metarl.envs.torch_env import TorchBatchedTradingEnv

    base = BatchedTradingEnv(batch_tasks(bars, BATCH), EnvSpec(window=WINDOW))
    rates: dict[str, float] = {}
    for total in (16384, 262144, 1048576):
        env = TorchBatchedTradingEnv(base, "cuda", replicas=total // BATCH)
        env.reset(seed=0)
        actions = torch.randint(0, 3, (steps, total), device="cuda")
        env.step(actions[0])
        torch.cuda.synchronize()
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        torch.cuda.synchronize()
        rates[str(total)] = round(total * steps / (time.perf_counter() - start), 1)
        print(
            f"TorchBatchedTradingEnv (cuda), B={total:8d}: {rates[str(total)]:16,.0f} env-steps/s"
        )
        del env
        torch.cuda.empty_cache()
    return rates


def batched_rate(bars: pd.DataFrame, steps: int, seconds: float) -> float:
    spec = EnvSpec(window=WINDOW)
    env = BatchedTradingEnv(batch_tasks(bars, BATCH), spec)
    actions = np.random.default_rng(1).integers(0, 3, (steps, BATCH))
    env.reset(seed=0)

    def run() -> int:
        for a in actions:
            env.step(a)
        return len(actions) * BATCH

    return timed(run, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per env (after warm-up)")
    parser.add_argument(
        "--rounds", type=int, default=21, help="interleaved rounds of the fused/batched comparison"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 s per env and 11 rounds (busy machines)"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 11

    bars, source = load_series()
    print(f"series: {source}, {len(bars)} days; window {WINDOW}; batch {BATCH}")
    single = single_env_rate(bars, 20_000, args.seconds)
    print(f"single TradingEnv:            {single:14,.0f} steps/s")
    anytrading = anytrading_rate(bars, 20_000, args.seconds)
    print(f"gym-anytrading StocksEnv:     {anytrading:14,.0f} steps/s")
    batched = batched_rate(bars, 50, args.seconds)
    print(f"BatchedTradingEnv (B={BATCH}): {batched:14,.0f} env-steps/s")
    fused = {b: fused_vs_batched(bars, b, args.rounds, 40) for b in (128, BATCH)}
    for b, r in fused.items():
        print(
            f"B={b:5d}: BatchedTradingEnv {r['batched']:12,.0f}  FusedTradingEnv ({r['kernel']}) "
            f"{r['fused']:12,.0f} env-steps/s (medians of {args.rounds} interleaved rounds); "
            f"paired ratios {r['ratios']}"
        )
    result = {
        "series": source,
        "window": WINDOW,
        "batch": BATCH,
        "single_steps_per_s": round(single, 1),
        "anytrading_steps_per_s": round(anytrading, 1),
        "batched_env_steps_per_s": round(batched, 1),
        "single_vs_anytrading": round(single / anytrading, 3),
        "batched_vs_anytrading": round(batched / anytrading, 3),
        "fused_kernel": fused[BATCH]["kernel"],
        "fused_env_steps_per_s": {str(b): round(r["fused"], 1) for b, r in fused.items()},
        "reference_env_steps_per_s": {str(b): round(r["batched"], 1) for b, r in fused.items()},
        "fused_vs_batched": round(fused[BATCH]["ratio"], 3),
        "fused_vs_batched_b128": round(fused[128]["ratio"], 3),
        "fused_vs_batched_cpu": round(fused[BATCH]["ratio_cpu"], 3),
        "fused_vs_batched_b128_cpu": round(fused[128]["ratio_cpu"], 3),
        "fused_rounds": args.rounds,
    }
    print(f"single / anytrading:  {result['single_vs_anytrading']:.2f}x (goal >= 1)")
    print(f"batched / anytrading: {result['batched_vs_anytrading']:.2f}x (goal >= 100)")
    print(
        f"fused / batched, B={BATCH}: {result['fused_vs_batched']:.2f}x (goal >= 2; median of "
        f"paired rounds, wall clock; CPU time {result['fused_vs_batched_cpu']:.2f}x)"
    )
    print(
        f"fused / batched, B=128:  {result['fused_vs_batched_b128']:.2f}x "
        f"(CPU time {result['fused_vs_batched_b128_cpu']:.2f}x)"
    )
    import torch

    if torch.cuda.is_available():  # goal: >= 500M env-steps/s at B=1048576 on an H200
        result["torch_env_steps_per_s"] = torch_rates(bars)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
