"""SIGKILL and SIGTERM at seeded moments of ``train``, ``backtest``, ``sweep`` and ``paper step``,
then the same command again: the result equals an uninterrupted run's.

Each command runs in a child forked from a warm server (``fork_server.py``) and is killed after a
delay drawn from a seeded generator, uniform over the uninterrupted run's duration; the signal
(SIGKILL or SIGTERM) is drawn too. No code under test knows it is being tested. Every test prints
its counts (kills, reruns, equal results): ``pytest -rA tests/faults`` shows them.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_helpers import TRAIN, Counts, ForkServer, check_ledger

pytestmark = pytest.mark.faults

SIGNALS = (signal.SIGKILL, signal.SIGTERM)


def kill_until_done(
    server: ForkServer,
    argv: Callable[[], list[str]],
    duration: float,
    kills: int,
    rng: np.random.Generator,
    counts: Counts,
    out: Path | None = None,
) -> None:
    """Run ``argv()``, killing it ``kills`` times at seeded moments, then run it to the end.

    A run that finishes before its signal removes ``out`` (when given) and starts over, so every
    kill lands in a run with work left to do.
    """
    while counts.kills < kills:
        sig = SIGNALS[int(rng.integers(len(SIGNALS)))]
        code, _ = server.run(argv(), kill_after=float(rng.uniform(0, duration)), sig=sig)
        if code == 0:
            if out is not None:
                shutil.rmtree(out)
            continue
        assert code == -sig, code
        counts.kills += 1
        counts.signals[sig.name] = counts.signals.get(sig.name, 0) + 1
    assert server.run(argv())[0] == 0
    counts.resumes += 1


def agent_state(run: Path, learner: str) -> list[torch.Tensor]:
    payload = torch.load(run / "checkpoints" / f"{learner}.pt", weights_only=True)
    return [v for _, v in sorted(payload["agent"].items()) if isinstance(v, torch.Tensor)]


def test_train_killed_at_random_moments_resumes_to_the_same_run(
    server: ForkServer, workdir: Path, trained: tuple[Path, float]
) -> None:
    counts, rng = Counts(), np.random.default_rng(101)
    ref, duration = trained  # the uninterrupted run
    out = workdir / "killed-run"

    def argv() -> list[str]:  # the same command; --resume once there is a run to resume
        return [*TRAIN, "--out", str(out), *(["--resume"] if (out / "run.json").exists() else [])]

    kill_until_done(server, argv, duration, 6, rng, counts, out)
    got, want = agent_state(out, "pooled"), agent_state(ref, "pooled")
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert (out / "metrics.csv").read_text() == (ref / "metrics.csv").read_text()
    assert json.loads((out / "run.json").read_text()) == json.loads((ref / "run.json").read_text())
    counts.equal += 1
    print(counts.report("train"))


def test_backtest_killed_at_random_moments_writes_all_or_nothing(
    server: ForkServer, workdir: Path, trained: tuple[Path, float]
) -> None:
    counts, rng = Counts(), np.random.default_rng(202)
    base = ["backtest", "--run", str(trained[0]), "--data", "bundled:SPY", "--protocol", "rolling"]
    base += ["--start", "2019-01-02", "--end", "2019-03-29"]
    code, duration = server.run([*base, "--out", "bt-ref"])
    assert code == 0
    want = (workdir / "bt-ref" / "metrics.json").read_text()
    out = workdir / "bt"

    def argv() -> list[str]:
        # all or nothing after every kill: no output folder, or a complete one
        assert not out.exists() or (out / "metrics.json").read_text() == want
        return [*base, "--out", str(out)]

    kill_until_done(server, argv, duration, 4, rng, counts, out)
    assert (out / "metrics.json").read_text() == want
    counts.equal += 1
    print(counts.report("backtest"))


def test_sweep_killed_at_random_moments_resumes_to_the_same_table(
    server: ForkServer, workdir: Path
) -> None:
    counts, rng = Counts(), np.random.default_rng(303)
    base = ["sweep", "--config", "tiny.toml", "--algo", "pooled", "--iterations", "2"]
    base += ["--grid", "train.hidden=8,16"]
    code, duration = server.run([*base, "--out", "sw-ref"])
    assert code == 0
    out = workdir / "sw"
    kill_until_done(server, lambda: [*base, "--out", str(out)], duration, 3, rng, counts, out)
    assert (out / "sweep.csv").read_text() == (workdir / "sw-ref" / "sweep.csv").read_text()
    counts.equal += 1
    print(counts.report("sweep"))


DAYS = ("2019-03-01", "2019-03-04", "2019-03-05", "2019-03-06", "2019-03-07", "2019-03-08")


def test_paper_step_killed_at_random_moments_never_trades_twice(
    server: ForkServer, workdir: Path, trained: tuple[Path, float]
) -> None:
    from market_metarl.live.ledger import Ledger

    counts, rng = Counts(), np.random.default_rng(404)
    init = ["paper", "init", "--run", str(trained[0]), "--feed", "bundled:SPY", "--db", "base.db"]
    assert server.run(init)[0] == 0
    for name in ("ref.db", "test.db"):  # one account, twice: its id is in every client order id
        shutil.copy(workdir / "base.db", workdir / name)
    durations = []
    for day in DAYS:
        code, seconds = server.run(["paper", "step", "--db", "ref.db", "--asof", day])
        assert code == 0
        durations.append(seconds)
    for day in DAYS:
        argv = ["paper", "step", "--db", "test.db", "--asof", day]
        kill_until_done(server, argv.copy, max(durations), counts.kills + 2, rng, counts)
        check_ledger(workdir / "test.db")
    with Ledger.open(workdir / "ref.db") as ref, Ledger.open(workdir / "test.db") as got:
        assert got.dump(("recorded_at",)) == ref.dump(("recorded_at",))
    counts.equal += 1
    print(counts.report("paper step"))
