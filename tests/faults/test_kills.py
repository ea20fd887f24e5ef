"""SIGKILL and SIGTERM at seeded moments of ``train``, ``backtest``, ``sweep`` and ``paper step``,
then the same command again: the result equals an uninterrupted run's. At least 20 kills per
command.

Each command runs in a child forked from a warm server (``fork_server.py``) and is killed after a
delay drawn from a seeded generator, uniform over the uninterrupted run's duration; the signal
(SIGKILL or SIGTERM) is drawn too. The next run is the same command on what the kill left. No code
under test knows it is being tested. Every test prints its counts (kills, reruns, equal results)
and the CPU seconds its runs took; the terminal summary lists them (``tests/conftest.py``).
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
from fault_helpers import TINY_TOML, TRAIN, Counts, ForkServer, check_ledger

pytestmark = pytest.mark.faults

SIGNALS = (signal.SIGKILL, signal.SIGTERM)
KILLS = 20
"""Kills per command, at least."""


def kill_until_done(
    server: ForkServer,
    argv: Callable[[], list[str]],
    duration: float,
    kills: int,
    rng: np.random.Generator,
    counts: Counts,
    check: Callable[[], None],
    out: Path | None = None,
) -> None:
    """Run ``argv()`` until ``counts.kills`` reaches ``kills``, killing each run at a seeded moment.

    After a kill the same command runs again on what the kill left. A run that finishes before
    its signal is checked (``check``: its result equals an uninterrupted run's); then, while kills
    are still due, ``out`` is removed so the next kill lands in a run with work left to do (with
    no ``out``, as for a paper step, it returns: the work is done). The last run is not killed.
    Kill moments are uniform over ``duration`` at first, then over the seconds of the latest run
    that finished from a fresh start (on a machine whose load changes, a duration measured while
    it was slower would waste runs that finish before their signal).
    """
    killed = False  # whether the next run starts on what a kill left
    while True:
        due = counts.kills < kills
        sig = SIGNALS[int(rng.integers(len(SIGNALS)))]
        ran = server.run(argv(), float(rng.uniform(0, duration)) if due else None, sig)
        counts.resumes += killed
        if ran.code == 0:
            check()
            counts.equal += 1
            if not killed:  # a whole run: later kill points follow the machine's current speed
                duration = ran.seconds
            if not due or out is None:
                return
            shutil.rmtree(out)
            killed = False
            continue
        assert ran.code == -sig, ran
        counts.kills += 1
        counts.signals[sig.name] = counts.signals.get(sig.name, 0) + 1
        killed = True


def agent_state(run: Path, learner: str) -> list[torch.Tensor]:
    payload = torch.load(run / "checkpoints" / f"{learner}.pt", weights_only=True)
    return [v for _, v in sorted(payload["agent"].items()) if isinstance(v, torch.Tensor)]


def test_train_killed_at_random_moments_resumes_to_the_same_run(
    server: ForkServer,
    workdir: Path,
    trained: tuple[Path, float],
    request: pytest.FixtureRequest,
) -> None:
    counts, rng = Counts(), np.random.default_rng(101)
    ref, duration = trained  # the uninterrupted run
    out = workdir / "killed-run"
    server.cpu = 0.0

    def argv() -> list[str]:  # the same command; --resume once there is a run to resume
        return [*TRAIN, "--out", str(out), *(["--resume"] if (out / "run.json").exists() else [])]

    def check() -> None:
        got, want = agent_state(out, "pooled"), agent_state(ref, "pooled")
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
        assert (out / "metrics.csv").read_text() == (ref / "metrics.csv").read_text()
        assert json.loads((out / "run.json").read_text()) == json.loads(
            (ref / "run.json").read_text()
        )

    kill_until_done(server, argv, duration, KILLS, rng, counts, check, out)
    counts.publish(request, "train", duration, server)


def test_backtest_killed_at_random_moments_writes_all_or_nothing(
    server: ForkServer,
    workdir: Path,
    trained: tuple[Path, float],
    request: pytest.FixtureRequest,
) -> None:
    counts, rng = Counts(), np.random.default_rng(202)
    base = ["backtest", "--run", str(trained[0]), "--data", "bundled:SPY", "--protocol", "rolling"]
    base += ["--start", "2019-01-02", "--end", "2019-01-31"]
    server.cpu = 0.0
    code, duration, _ = server.run([*base, "--out", "bt-ref"])
    assert code == 0
    want = (workdir / "bt-ref" / "metrics.json").read_text()
    out = workdir / "bt"

    def argv() -> list[str]:
        # all or nothing after every kill: no output folder, or a complete one
        assert not out.exists() or (out / "metrics.json").read_text() == want
        return [*base, "--out", str(out)]

    def check() -> None:
        assert (out / "metrics.json").read_text() == want

    kill_until_done(server, argv, duration, KILLS, rng, counts, check, out)
    counts.publish(request, "backtest", duration, server)


def test_sweep_killed_at_random_moments_resumes_to_the_same_table(
    server: ForkServer, workdir: Path, request: pytest.FixtureRequest
) -> None:
    counts, rng = Counts(), np.random.default_rng(303)
    # the tiny config scored on 2010-2011 only: fewer tasks to score, the same kind of work
    config = workdir / "sweep.toml"
    config.write_text(TINY_TOML.replace('"2010-03-01", "2019-12-31"', '"2010-03-01", "2011-12-31"'))
    base = ["sweep", "--config", str(config), "--algo", "pooled", "--iterations", "2"]
    base += ["--grid", "train.hidden=8,16"]
    server.cpu = 0.0
    code, duration, _ = server.run([*base, "--out", "sw-ref"])
    assert code == 0
    want = (workdir / "sw-ref" / "sweep.csv").read_text()
    out = workdir / "sw"

    def check() -> None:
        assert (out / "sweep.csv").read_text() == want

    argv = [*base, "--out", str(out)]
    kill_until_done(server, argv.copy, duration, KILLS, rng, counts, check, out)
    counts.publish(request, "sweep", duration, server)


DAYS: tuple[str, ...] = (
    *("2019-03-01", "2019-03-04", "2019-03-05", "2019-03-06", "2019-03-07", "2019-03-08"),
    *("2019-03-11", "2019-03-12", "2019-03-13", "2019-03-14", "2019-03-15", "2019-03-18"),
)
"""Trading days stepped in order, until the kills are done (4 days at 5 kills each, or more)."""


def test_paper_step_killed_at_random_moments_never_trades_twice(
    server: ForkServer,
    workdir: Path,
    trained: tuple[Path, float],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(workdir)
    counts, rng = Counts(), np.random.default_rng(404)
    init = ["paper", "init", "--run", str(trained[0]), "--feed", "bundled:SPY", "--db", "base.db"]
    assert server.run(init).code == 0
    for name in ("ref.db", "test.db"):  # one account, twice: its id is in every client order id
        shutil.copy(workdir / "base.db", workdir / name)
    server.cpu, longest = 0.0, 0.0
    for day in DAYS:  # each day: the uninterrupted step, then up to 5 kills of the same step
        code, seconds, _ = server.run(["paper", "step", "--db", "ref.db", "--asof", day])
        assert code == 0
        longest = max(longest, seconds)
        argv = ["paper", "step", "--db", "test.db", "--asof", day]

        kill_until_done(server, argv.copy, seconds, counts.kills + 5, rng, counts, same_ledgers)
        if counts.kills >= KILLS:
            break
    assert counts.kills >= KILLS
    counts.publish(request, "paper step", longest, server)


def same_ledgers() -> None:
    """``test.db`` is consistent and equals ``ref.db`` (in the working folder)."""
    from market_metarl.live.ledger import Ledger

    check_ledger(Path("test.db"))
    with Ledger.open("ref.db") as ref, Ledger.open("test.db") as got:
        assert got.dump(("recorded_at",)) == ref.dump(("recorded_at",))
