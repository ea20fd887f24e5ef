"""A sweep's table: one row per combination of settings, scored over its tasks and seeds.

:func:`summarise` turns the pieces' results (what :func:`market_metarl.meta.sweep.sweep_piece`
returns) into rows (:class:`Row`), best first; :func:`table_lines` prints them and
:func:`write_table` writes ``sweep.csv``. Scores are annualised Sharpe ratios of the query days
(:func:`market_metarl.meta.evaluation.task_sharpe`), their interval the evaluation's one
bootstrap (:func:`market_metarl.meta.evaluation.bootstrap_mean`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from market_metarl.fileio import atomic_write_text
from market_metarl.meta.evaluation import bootstrap_mean


@dataclass(frozen=True)
class Row:
    """One combination's line of the sweep table.

    Attributes:
        combo: The combination's number (grid order, the first setting varying slowest).
        settings: Its ``{"section.key": value}`` settings.
        seeds: Seeds trained and scored.
        tasks: Tasks scored per seed.
        score: Mean post-adaptation Sharpe ratio over tasks and seeds (annualised).
        ci_low: Lower end of the score's 95% bootstrap interval.
        ci_high: Upper end of that interval.
        zero_shot: Mean Sharpe ratio of the same query days traded before adapting.
        gain: Mean of post- minus pre-adaptation Sharpe over tasks and seeds.
    """

    combo: int
    settings: dict[str, Any]
    seeds: int
    tasks: int
    score: float
    ci_low: float
    ci_high: float
    zero_shot: float
    gain: float


def summarise(results: Sequence[dict[str, Any]], n_boot: int = 2000) -> list[Row]:
    """One row per combination, best score first (ties: lower combination number first).

    Args:
        results: The pieces' results, each with ``combo``, ``seed``, ``settings`` and one
            ``post_sharpe`` and ``pre_sharpe`` per task (the same tasks for every seed).
        n_boot: Bootstrap replicates of the interval (seeded: the same table every time).

    Returns:
        The rows; a combination whose score is not finite sorts last.
    """
    by_combo: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        by_combo.setdefault(int(r["combo"]), []).append(r)
    rows = []
    for combo, rs in sorted(by_combo.items()):
        rs = sorted(rs, key=lambda r: int(r["seed"]))
        post = np.array([r["post_sharpe"] for r in rs], dtype=float)
        pre = np.array([r["pre_sharpe"] for r in rs], dtype=float)
        lo, hi = bootstrap_mean(post, n_boot=n_boot, seed=0)
        rows.append(
            Row(
                combo,
                rs[0]["settings"],
                len(rs),
                post.shape[1],
                float(post.mean()),
                lo,
                hi,
                float(pre.mean()),
                float((post - pre).mean()),
            )
        )
    return sorted(rows, key=lambda r: (-r.score if math.isfinite(r.score) else math.inf, r.combo))


FIGURES: tuple[str, ...] = ("score", "ci_low", "ci_high", "zero_shot", "gain")
"""The table's figures (``Row`` fields), after its settings, ``seeds`` and ``tasks`` columns."""


def _cells(row: Row, keys: Sequence[str], fmt: str) -> list[str]:
    figures = [format(getattr(row, f), fmt) for f in FIGURES]
    return [*(str(row.settings[k]) for k in keys), str(row.seeds), str(row.tasks), *figures]


def table_lines(rows: Sequence[Row], keys: Sequence[str]) -> list[str]:
    """The table as aligned text lines (header first).

    Args:
        rows: The rows, in the order printed.
        keys: The grid's settings (``train.hidden``...), one column each, headed by the last
            part of the key.
    """
    head = [*(k.split(".")[-1] for k in keys), "seeds", "tasks", *FIGURES]
    lines = [head, *(_cells(r, keys, ".3f") for r in rows)]
    widths = [max(len(x) for x in col) for col in zip(*lines, strict=True)]
    return ["  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)) for line in lines]


def write_table(path: Path, rows: Sequence[Row], keys: Sequence[str]) -> None:
    """Write the table as CSV (atomically): rank, combo, the settings ``keys``, then the figures.

    Figures are written with 6 significant digits; the header names the settings in full.
    """
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "combo", *keys, "seeds", "tasks", *FIGURES])
    for rank, r in enumerate(rows, 1):
        writer.writerow([str(rank), str(r.combo), *_cells(r, keys, ".6g")])
    atomic_write_text(path, buf.getvalue())
