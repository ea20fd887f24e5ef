"""Paper trading: each trading day, pull fresh bars, adapt on the recent days, trade, record.

Modules (each imported where needed; this package imports nothing):

- ``calendar``: exchange calendars (XNYS through exchange-calendars; ``weekdays``);
- ``feeds``: ``yfinance:SYMBOL`` (live) and replay feeds, refusing closed days, stale data, gaps;
- ``ledger``, ``schema``: the durable SQLite ledger (one transaction per step) and its tables;
- ``broker``: the ``Broker`` interface and ``PaperBroker`` (next-open fills, the simulator's trade);
- ``alpaca``, ``alpaca_client``, ``alpaca_schema``: ``AlpacaBroker`` (``paper init --broker
  alpaca``; alpaca-py, imported only then), its clients and OPG window, and its ledger tables;
- ``settings``: the ``[paper]`` table; ``guardrails``: exposure, turnover, kill switch, fallback;
- ``account``: creating and opening an account; ``step``: the daily step; ``loop``: the loop;
- ``status``: the account's state;
- ``api``: the typed entry points (``init_account``, ``step_account``, ``run_account``,
  ``account_status``, ``reset_account``) that ``market-metarl paper`` (in ``cli.paper``) calls.
"""
