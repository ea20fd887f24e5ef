"""Runs ``market-metarl ARGV`` in a forked child for each JSON argv line read on stdin.

The fault tests kill those children at seeded moments: forking from a process that has imported
the package and its heavy libraries (torch with ``torch._dynamo``, which ``torch.optim`` imports
when the first optimizer is made; hmmlearn with scikit-learn; scipy.stats; matplotlib), but run no
torch operation, spares each run the seconds of imports. Prints ``ready``, then per run
``child PID``, the child's own output, and ``exit CODE CPU`` (CODE negative: killed by that
signal; CPU: the child's CPU seconds). An empty line ends the server.

Run as a script it imports all of that first (:func:`warm`); a driver whose commands need less
(``tests/live/alpaca_soak.py``: ``paper step`` only) imports this module, warms what it needs and
calls :func:`serve`. :func:`serve` freezes every object imported so far out of the garbage
collector's reach (``gc.freeze``) before the first fork.
"""

from __future__ import annotations

import gc
import io
import json
import os
import sys
import traceback

from market_metarl.cli import main


def warm() -> None:
    """Import what the fault tests' commands (train, backtest, sweep, paper) read: seconds.

    Also backtrader (the backtest's bridge), pyarrow's Parquet reader (the bundled data) and
    exchange_calendars (``paper step``'s calendar), and one throwaway figure drawn into memory, so
    matplotlib's fonts are loaded once here rather than in every backtest (no torch operation, no
    thread: nothing a fork could break).
    """
    import exchange_calendars  # noqa: F401  (paper step's XNYS calendar)
    import hmmlearn.hmm  # noqa: F401  (the backtest's hmm_switch)
    import matplotlib
    import pyarrow.dataset  # (pyarrow.parquet reads the bundled data through it)
    import pyarrow.pandas_compat  # noqa: F401
    import scipy.stats  # noqa: F401
    import torch._dynamo  # (torch.optim imports it on the first optimizer: seconds)
    import torch.utils.serialization  # noqa: F401  (torch.load of a checkpoint)

    matplotlib.use("Agg", force=True)  # as the backtest's plots do
    import matplotlib.patches
    import matplotlib.pyplot as plt

    import market_metarl.backtest.baselines
    import market_metarl.backtest.bridge  # (imports backtrader, then resets Agg)
    import market_metarl.backtest.outputs
    import market_metarl.backtest.regime_switch
    import market_metarl.backtest.report
    import market_metarl.backtest.rules
    import market_metarl.backtest.runner
    import market_metarl.data.bundled
    import market_metarl.data.plotting
    import market_metarl.data.regime_labels
    import market_metarl.live.account
    import market_metarl.live.step
    import market_metarl.meta.sweep
    import market_metarl.meta.trainer  # noqa: F401

    fig, ax = plt.subplots(figsize=(2, 2))  # a title, a legend and a tight layout, in memory
    ax.plot([0, 1], [0, 1], label="x")
    ax.set_title("warm")
    ax.legend()
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def _run(argv: list[str]) -> int:
    """``main(argv)``'s exit code in the child, an uncaught exception's (1, traceback) included.

    The child then leaves by ``os._exit``: an exception let out of the child would tear down the
    interpreter (torch and all: seconds on a busy machine) before the exit code is known.
    """
    try:
        return main(argv)
    except SystemExit as exc:  # what the interpreter would exit with
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def serve() -> None:
    # Everything imported so far moves out of the cyclic collector's reach: a child's collections
    # no longer walk (and so copy, page by page) the parent's objects after the fork.
    gc.collect()
    gc.freeze()
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:
            print(f"child {os.getpid()}", flush=True)
            code = _run(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        cpu = usage.ru_utime + usage.ru_stime
        print(f"exit {os.waitstatus_to_exitcode(status)} {cpu:.3f}", flush=True)


if __name__ == "__main__":
    warm()
    serve()
