"""Execution backends without Ray: the local backend, chunking, and a clear error when Ray is
missing (the Ray backend itself is tested in ``tests/meta/test_ray.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from market_metarl.chunks import split
from market_metarl.cli import main
from market_metarl.parallel import LocalBackend, get_backend
from market_metarl.types import ConfigError

SMALL = Path(__file__).resolve().parent / "meta"


def square_plus(shared: int, item: int) -> int:
    return item * item + shared


def test_local_backend_maps_in_item_order() -> None:
    backend = get_backend("local")
    assert isinstance(backend, LocalBackend)
    assert backend.map(square_plus, [3, 1, 2], 10) == [19, 11, 14]
    assert list(backend.imap(square_plus, [3, 1, 2], 10)) == [(0, 19), (1, 11), (2, 14)]
    assert backend.map(square_plus, [], 10) == []


def test_local_backend_runs_pieces_lazily_and_raises_their_errors() -> None:
    seen: list[int] = []

    def piece(shared: Any, item: int) -> int:
        seen.append(item)
        if item == 2:
            raise ConfigError("bad item 2")
        return item

    it = LocalBackend().imap(piece, [0, 1, 2, 3])
    assert next(it) == (0, 0) and seen == [0]  # nothing runs ahead of the consumer
    assert next(it) == (1, 1)
    with pytest.raises(ConfigError, match="bad item 2"):
        next(it)
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("n, chunks", [(1, 1), (5, 2), (16, 2), (3, 8), (7, 7)])
def test_chunks_cover_every_item_once_in_order(n: int, chunks: int) -> None:
    groups = split(n, chunks)
    assert [i for g in groups for i in g] == list(range(n))
    assert len(groups) == min(n, chunks) and all(len(g) > 0 for g in groups)
    assert max(map(len, groups)) - min(map(len, groups)) <= 1


def test_unknown_backend_and_stray_address_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'dask'; valid: local, ray"):
        get_backend("dask")
    with pytest.raises(ConfigError, match="--address names a Ray cluster"):
        get_backend("local", address="127.0.0.1:6379")


def hide_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import ray`` fail, as it does without the distributed extra."""
    for name in list(sys.modules):
        if name == "ray" or name.startswith("ray."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_ray(monkeypatch)
    with pytest.raises(ConfigError, match=r"pip install 'market-metarl\[distributed\]'"):
        get_backend("ray")


@pytest.mark.parametrize("command", ["sweep", "train", "backtest"])
def test_cli_backend_ray_without_ray_exits_2_with_one_line(
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hide_ray(monkeypatch)
    config = str(SMALL.parent.parent / "envs" / "synthetic.toml")
    out = tmp_path / "out"
    argv = {
        "sweep": ["sweep", "--config", config, "--seeds", "2", "--out", str(out)],
        "train": ["train", "--config", config, "--out", str(out)],
        "backtest": ["backtest", "--run", str(tmp_path), "--out", str(out)],
    }[command]
    assert main([*argv, "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --backend ray needs Ray")
    assert "pip install 'market-metarl[distributed]'" in err
    assert not out.exists()  # nothing half-written


def test_ray_is_imported_only_when_asked_for() -> None:
    """The command line, the trainer, the backtest and a local sweep never import Ray."""
    import subprocess

    code = (
        "import sys\n"
        "import market_metarl.cli, market_metarl.backtest.runner, market_metarl.meta.sweep\n"
        "from market_metarl.parallel import get_backend\n"
        "get_backend('local').map(lambda s, x: x, [-1])\n"
        "sys.exit(1 if any(m == 'ray' or m.startswith('ray.') for m in sys.modules) else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
