"""Runs ``market-metarl ARGV`` in a forked child for each JSON argv line read on stdin.

The fault tests kill those children at seeded moments: forking from a process that has imported
the package and its heavy libraries (but run no torch operation) spares each run the seconds of
imports. Prints ``ready``, then per run ``child PID``, the child's own output, and ``exit CODE``
(negative: killed by that signal). An empty line ends the server.
"""

from __future__ import annotations

import json
import os
import sys

import market_metarl.backtest.runner
import market_metarl.live.account
import market_metarl.live.step
import market_metarl.meta.sweep
import market_metarl.meta.trainer  # noqa: F401  (imported once, before forking)
from market_metarl.cli import main


def serve() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:
            print(f"child {os.getpid()}", flush=True)
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve()
