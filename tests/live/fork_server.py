"""Runs ``market-metarl ARGV`` in a forked child each time it reads ``go`` on stdin.

The kill test SIGKILLs those children at random moments: forking from a process that has imported
the package already (and run no torch operation) spares each run the seconds of importing torch.
Prints ``ready``, then per run ``child PID``, the child's own output, and ``exit CODE``.
"""

from __future__ import annotations

import os
import sys

import market_metarl.live.account
import market_metarl.live.loop
import market_metarl.live.step  # noqa: F401  (imported once, before forking)
from market_metarl.cli import main
from market_metarl.data.sources import load_bars
from market_metarl.live.calendar import get_calendar


def serve(argv: list[str]) -> None:
    # warm what every child reads (no torch here): the bundled bars and the exchange calendar
    load_bars("bundled:SPY")
    get_calendar("XNYS").sessions("2019-01-02", "2019-01-31")
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        pid = os.fork()
        if pid == 0:
            print(f"child {os.getpid()}", flush=True)
            code = main(argv)
            sys.stdout.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1:])
