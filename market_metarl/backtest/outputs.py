"""A backtest's output folder: ``metrics.json``, ``positions.csv``, ``returns.csv``, the report.

Everything is written into a temporary sibling folder that is swapped in for ``--out`` only once
it is complete (:func:`swap_in`, the directory counterpart of :func:`market_metarl.fileio.atomic_write`),
so an error leaves nothing half-written, and an earlier backtest there is replaced whole.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from market_metarl.backtest.daily import returns_frame
from market_metarl.backtest.results import Backtest
from market_metarl.fileio import json_safe
from market_metarl.types import ConfigError


def positions_frame(bt: Backtest) -> pd.DataFrame:
    """``date,strategy,symbol,position,equity``: one row per book and day.

    The last day of a book has no decision: its position is empty.
    """
    frames = []
    for acc in bt.accounts:
        position = acc.targets.reindex(acc.equity.index)
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.DatetimeIndex(acc.equity.index).strftime("%Y-%m-%d"),
                    "strategy": acc.label,
                    "symbol": acc.market.symbol,
                    "position": position.to_numpy(),
                    "equity": acc.equity.to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def check_out(out: Path) -> None:
    """Refuse an output folder that exists and is not an earlier backtest (nothing is touched).

    Raises:
        ConfigError: ``out`` is a file, or a non-empty folder without ``metrics.json``.
    """
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.json").exists())
    ):
        raise ConfigError(
            f"--out {out} exists and is not an earlier backtest; choose a new folder or remove it"
        )


def swap_in(tmp: Path, out: Path) -> None:
    """Rename the complete folder ``tmp`` to ``out``, replacing an earlier ``out`` whole."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale(out: Path) -> None:
    """Remove the ``.NAME.partial-PID`` and ``.NAME.old-PID`` folders killed backtests left.

    A backtest writes aside (``partial``) and swaps in (``old``); one killed meanwhile (SIGKILL,
    a power cut) leaves its folder beside ``out``. Those of a process still alive are kept.
    """
    prefix = f".{out.name}."
    for path in out.parent.glob(f"{glob.escape(prefix)}*-*"):
        kind, _, pid = path.name[len(prefix) :].rpartition("-")
        if kind in ("partial", "old") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_outputs(out: Path, doc: dict[str, Any], bt: Backtest) -> Path:
    """Write ``metrics.json`` (``doc``), ``positions.csv``, ``returns.csv``, the report; swap in.

    Args:
        out: The output folder (created or replaced).
        doc: The content of ``metrics.json``.
        bt: The computed backtest.

    Returns:
        ``out``.
    """
    from market_metarl.backtest.report import write_report

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "metrics.json").write_text(json.dumps(json_safe(doc), indent=2) + "\n")
        positions_frame(bt).to_csv(tmp / "positions.csv", index=False, float_format="%.12g")
        returns_frame(bt).to_csv(tmp / "returns.csv", index=False, float_format="%.12g")
        write_report(tmp, doc, bt)
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
