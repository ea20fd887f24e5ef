"""Gymnasium conventions: ``import market_metarl`` registers the ids and stays light.

Each check runs in a fresh interpreter, since this test process has long imported pandas and the
envs already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium.envs.registration

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter on this checkout; its stdout (fails on an error)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_market_metarl_registers_the_ids_without_heavy_imports() -> None:
    out = run_python(
        "import sys\n"
        "import market_metarl\n"
        "heavy = sorted(m for m in ('pandas', 'torch', 'matplotlib', 'backtrader') if m in sys.modules)\n"
        "import gymnasium as gym\n"
        "ids = sorted(i for i in gym.registry if i.startswith('market_metarl/'))\n"
        "print(heavy, ids)\n"
        "env = gym.make('market_metarl/Trading-v0')\n"
        "print(type(env.unwrapped).__name__)\n"
    )
    assert out.splitlines() == [
        "[] ['market_metarl/Portfolio-v0', 'market_metarl/Trading-v0']",
        "TradingEnv",
    ]


def test_import_market_metarl_loads_no_gymnasium_and_registers_either_order() -> None:
    out = run_python(
        "import sys\n"
        "import market_metarl\n"
        "print(sorted(m for m in ('gymnasium', 'numpy') if m in sys.modules))\n"
        "import gymnasium as gym\n"
        "print('market_metarl/Trading-v0' in gym.registry, gym.__spec__.name)\n"
    )
    assert out.splitlines() == ["[]", "True gymnasium"]
    out = run_python(
        "import gymnasium as gym\n"
        "import market_metarl\n"
        "print('market_metarl/Portfolio-v0' in gym.registry)\n"
    )
    assert out.strip() == "True"


def test_the_envs_package_imports_while_gymnasium_is_first_loaded() -> None:
    # market_metarl.envs imports Gymnasium itself; the import hook fires in the middle of it
    out = run_python(
        "import market_metarl\n"
        "import market_metarl.envs\n"
        "import gymnasium as gym\n"
        "print(sorted(i for i in gym.registry if i.startswith('market_metarl/')))\n"
    )
    assert out.strip() == "['market_metarl/Portfolio-v0', 'market_metarl/Trading-v0']"


def test_module_prefixed_id_needs_no_import_of_the_package() -> None:
    out = run_python(
        "import sys\n"
        "import gymnasium as gym\n"
        "assert 'market_metarl' not in sys.modules\n"
        "env = gym.make('market_metarl:market_metarl/Portfolio-v0')\n"
        "print(type(env.unwrapped).__name__)\n"
    )
    assert out.strip() == "PortfolioEnv"


def test_gymnasium_reads_no_plugin_entry_points() -> None:
    """Gymnasium 1.0 dropped its plugin loader, so a ``gymnasium.envs`` entry point would be dead.

    If a release brings ``load_plugin_envs`` back, declare ``[project.entry-points."gymnasium.envs"]``
    in pyproject (value ``market_metarl.envs.registration:register_envs``) and test it here.
    """
    assert not hasattr(gymnasium.envs.registration, "load_plugin_envs")
