"""The data layer: market bars in, tasks out. It knows nothing of envs or policies.

- :mod:`~market_metarl.data.sources` resolves a source spec (``bundled:SPY``, ``csv:PATH``,
  ``yfinance:SPY``, ``synthetic:NAME``) to bars through :mod:`~market_metarl.data.bundled`,
  :mod:`~market_metarl.data.csvfile`, :mod:`~market_metarl.data.yahoo` or
  :mod:`~market_metarl.data.synthetic`; every loader ends in
  :func:`~market_metarl.data.bars.validate_bars`, the canonical bars contract, which refuses bad
  rows or drops isolated ones under a repair policy (:mod:`~market_metarl.data.repair`).
- :mod:`~market_metarl.data.universe` expands a config's symbols (csv globs and directories,
  excludes) into one source per asset, each with one symbol name.
- :mod:`~market_metarl.data.features` computes causal features (a value at date t reads bars
  dated <= t only).
- :mod:`~market_metarl.data.regimes` cuts a symbol's history into labelled regimes;
  :mod:`~market_metarl.data.tasks` turns regimes into frozen TaskSpecs split in time.

Submodules are imported where needed, so importing this package reads no data and loads no pandas.
"""
