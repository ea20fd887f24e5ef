"""The toolkit from Python: load, train, backtest and paper-trade in a few calls.

``import market_metarl as mm`` gives every name here (loaded on first use, so importing the
package stays light)::

    import market_metarl as mm

    bars = mm.load("bundled:SPY", start="2015-01-01")
    exp = mm.Experiment.from_toml("envs/default.toml", train={"iterations": 50})
    run = mm.train(exp, "maml")                      # a TrainedRun, in a temporary directory
    result = mm.run_backtest(run, "bundled:GOOG", protocol="rolling")
    result.metrics["strategies"]["adapted"]["sharpe"], result.positions.head()
    result.report("out/goog")                        # report.html, metrics.json, CSVs, PNGs
    account = mm.PaperAccount.init("paper.db", mm.train(exp, out="runs/spy"), "bundled:SPY")
    account.step("2021-01-04"), account.status()["equity"]

Every call is a thin layer over the module that owns the work (:mod:`market_metarl.data.sources`,
:mod:`market_metarl.meta.trainer`, :mod:`market_metarl.backtest.runner`,
:mod:`market_metarl.live.api`), the same code the command line runs, with the same errors:
:class:`~market_metarl.types.ConfigError`, :class:`~market_metarl.types.DataError` and
:class:`~market_metarl.types.RunError` say what is wrong and how to fix it.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_metarl.api.paper import Date, PaperAccount, parse_day
from market_metarl.types import DataError, RunError

if TYPE_CHECKING:  # the layers import numpy, pandas and torch: each call imports what it needs
    import pandas as pd

    from market_metarl.backtest.results import Backtest
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.run import TrainedRun
    from market_metarl.meta.trainer import TrainEvent
    from market_metarl.parallel import Backend

__all__ = ["BacktestResult", "PaperAccount", "load", "open_run", "run_backtest", "train"]


def load(source: str, start: Date | None = None, end: Date | None = None) -> pd.DataFrame:
    """The validated daily bars a source spec names, optionally cut to ``start..end``.

    Args:
        source: ``bundled:SPY``, ``csv:path/to/file.csv``, ``yfinance:SPY`` or
            ``synthetic:ar-regimes?seed=3``.
        start: First date kept (inclusive).
        end: Last date kept (inclusive).

    Returns:
        The bars: a ``DatetimeIndex`` named ``date`` and float columns ``open high low close
        volume``.

    Raises:
        ConfigError: A date is not ``YYYY-MM-DD``.
        DataError: The source cannot be read or fails validation, or has no bar in the range.
    """
    import pandas as pd

    from market_metarl.data.sources import load_bars

    first, last = parse_day(start, "start"), parse_day(end, "end")
    bars = load_bars(source)
    lo = None if first is None else pd.Timestamp(first)
    hi = None if last is None else pd.Timestamp(last)
    cut = bars.loc[lo:hi]
    if cut.empty:
        raise DataError(
            f"{source} has no bars between {start or 'its start'} and {end or 'its end'}; its "
            f"bars run {bars.index[0].date()}..{bars.index[-1].date()}"
        )
    return cut


def open_run(path: str | Path) -> TrainedRun:
    """The trained run in the directory ``path`` (written by :func:`train` or the command line).

    Raises:
        RunError: ``path`` is missing, unfinished or corrupt.
    """
    from market_metarl.meta.run import TrainedRun

    return TrainedRun.open(path)


def train(
    exp: Experiment | str | Path,
    algo: str | None = None,
    out: str | Path | None = None,
    iterations: int | None = None,
    seed: int | None = None,
    *,
    resume: bool = False,
    on_event: Callable[[TrainEvent], None] | None = None,
    backend: Backend | None = None,
) -> TrainedRun:
    """Meta-train ``algo`` (and its pooled twin) on the experiment's train tasks.

    With ``out`` the run directory is written there and outlives the process, like
    ``market-metarl train --out``. Without it the run is trained into a temporary directory that
    belongs to the returned object: it stays usable as long as the object is referenced
    (its agents, backtests and paper accounts read it), and is deleted when the object is garbage
    collected or the interpreter exits. Give ``out`` to keep a run, e.g. for a paper account
    stepped on later days.

    Args:
        exp: The experiment, or the path of a TOML config.
        algo: A registered algorithm (``maml``, ``rl2``, ``pearl``...; default: the config's
            ``train.algo``).
        out: The run directory (default: a temporary one, see above).
        iterations: Overrides ``train.iterations`` (learners whose table sets their own keep it).
        seed: The root seed (default 0).
        resume: Continue an interrupted run in ``out``.
        on_event: Called after every checkpoint interval with the learner's metrics.
        backend: Runs the per-task pieces of a meta-batch (default: this process).

    Returns:
        The trained run, opened.

    Raises:
        ConfigError: Unknown algorithm, bad config or override.
        RunError: ``out`` holds a different run, or ``resume`` without ``out``.
    """
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.run import TrainedRun
    from market_metarl.meta.trainer import train as train_run
    from market_metarl.meta.trainer import with_iterations
    from market_metarl.parallel import LOCAL

    if isinstance(exp, str | Path):
        exp = Experiment.from_toml(exp)
    exp = with_iterations(exp, iterations)
    name = algo or exp.train.algo
    if resume and out is None:
        raise RunError("resume needs the run directory: give out=")

    def fit(path: Path) -> TrainedRun:
        return TrainedRun.open(
            train_run(exp, name, path, seed or 0, resume, on_event, backend or LOCAL)
        )

    return fit(Path(out)) if out is not None else _in_temporary_dir(fit, name)


def _in_temporary_dir(fit: Callable[[Path], TrainedRun], name: str) -> TrainedRun:
    """``fit`` into a new temporary directory that the returned run owns (removed with it)."""
    tmp = tempfile.mkdtemp(prefix="market_metarl-run-")
    try:
        run = fit(Path(tmp) / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    weakref.finalize(run, shutil.rmtree, tmp, ignore_errors=True)
    return run


@dataclass(frozen=True)
class BacktestResult:
    """A backtest, computed: its figures, positions and returns, and the report's writer.

    Attributes:
        metrics: What ``metrics.json`` holds: per strategy under ``"strategies"``
            (``total_return``, ``annual_return``, ``annual_vol``, ``sharpe``, ``sortino``,
            ``max_drawdown``, ``calmar``, ``turnover``, ``n_days``), the protocol, K, confidence
            intervals, paired comparisons and the reconciliation of backtrader with the env
            (non-finite numbers as None).
        book: Everything computed, per strategy, seed and market
            (:class:`~market_metarl.backtest.results.Backtest`).
        path: The folder ``run_backtest(out=...)`` wrote (None without ``out``; see :meth:`report`).
    """

    metrics: dict[str, Any]
    book: Backtest
    path: Path | None = None

    @property
    def protocol(self) -> str:
        """``regime`` or ``rolling``."""
        return str(self.metrics["protocol"])

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per strategy (the index), one column per figure of ``metrics``."""
        import pandas as pd

        return pd.DataFrame(self.metrics["strategies"]).T.astype(float)

    @cached_property
    def positions(self) -> pd.DataFrame:
        """``positions.csv``: ``date, strategy, symbol, position, equity``, one row per book and day.

        ``date`` is a datetime; ``position`` is the target weight held over the next day (empty
        on a book's last day).
        """
        import pandas as pd

        from market_metarl.backtest.outputs import positions_frame

        frame = positions_frame(self.book)
        frame["date"] = pd.to_datetime(frame["date"])
        return frame

    @cached_property
    def returns(self) -> pd.DataFrame:
        """``returns.csv``: ``date, strategy, symbol, return``, one row per book and active day."""
        import pandas as pd

        from market_metarl.backtest.daily import returns_frame

        frame = returns_frame(self.book)
        frame["date"] = pd.to_datetime(frame["date"])
        return frame

    def report(self, out: str | Path) -> Path:
        """Write the backtest folder, as ``market-metarl backtest --out`` does.

        ``report.html``, ``metrics.json``, ``positions.csv``, ``returns.csv`` and the PNGs, swapped
        in whole (an earlier backtest in ``out`` is replaced).

        Args:
            out: The output folder.

        Returns:
            The path of ``report.html``.

        Raises:
            ConfigError: ``out`` exists and is not an earlier backtest.
        """
        from market_metarl.backtest.outputs import check_out, write_outputs

        folder = Path(out)
        check_out(folder)
        write_outputs(folder, self.metrics, self.book)
        return folder / "report.html"


def run_backtest(
    run: TrainedRun | str | Path,
    data: str | Sequence[str] | None = None,
    protocol: str = "rolling",
    out: str | Path | None = None,
    *,
    adapt_days: int | None = None,
    every: int = 20,
    start: Date | None = None,
    end: Date | None = None,
    seeds: int = 1,
    strategies: Sequence[str] | None = None,
    n_boot: int = 1000,
    bootstrap_seed: int = 0,
    progress: bool = False,
    backend: Backend | None = None,
) -> BacktestResult:
    """Backtest every strategy of a trained run in backtrader and the env's books.

    Args:
        run: The trained run (from :func:`train`) or its directory.
        data: Source(s) traded (``bundled:GOOG``, several as a list or a comma-separated string),
            or None for the run's own held-out test tasks.
        protocol: ``rolling`` (every R days adapt on the last K days, trade the next R: nothing
            known in hindsight; the command line's default is ``regime``) or ``regime`` (adapt on
            a regime's first K days, trade the next H; the boundaries are hindsight labels).
        out: Also write the backtest folder there (see :meth:`BacktestResult.report`).
        adapt_days: K (default: the run's ``train.adapt_days``).
        every: R, days between adaptations (rolling).
        start: First date traded.
        end: Last date read.
        seeds: Seeds of the seeded strategies (``scratch``).
        strategies: The strategies booked (default: all; ``adapted`` is always needed).
        n_boot: Bootstrap replicates of the confidence intervals.
        bootstrap_seed: Seed of the bootstrap.
        progress: Show a progress bar.
        backend: Where the strategy x seed x market pieces run (default: this process).

    Raises:
        ConfigError: Bad protocol, K, dates or ``out``.
        DataError: The data cannot be read or is too short for the protocol.
        RunError: The run is missing or unfinished.
    """
    from market_metarl.backtest.outputs import check_out, json_safe
    from market_metarl.backtest.runner import check_inputs, evaluate
    from market_metarl.meta.run import TrainedRun

    folder = None if out is None else Path(out)
    if folder is not None:
        check_out(folder)  # before the long work
    check_inputs(data, start, end)
    opened = run if isinstance(run, TrainedRun) else TrainedRun.open(run)
    doc, book = evaluate(
        opened, data, protocol, adapt_days, start, end, seeds, every, n_boot, bootstrap_seed,
        progress=progress, backend=backend, strategies=strategies,
    )  # fmt: skip
    result = BacktestResult(json_safe(doc), book, folder)
    if folder is not None:
        result.report(folder)
    return result
