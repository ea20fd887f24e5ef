"""Backtests of trained runs: protocols, the backtrader bridge, metrics, statistics and reports.

Importing this package is light: backtrader is imported only by :mod:`.bridge`, when a backtest
runs. The entry point is :func:`market_metarl.backtest.runner.run_backtest` (``market-metarl
backtest`` on the command line).
"""
