"""Creating a paper account, and opening one (ledger, run, agents, feed) for stepping.

``init_account`` validates everything (run, feed, settings) before it creates the ledger, so bad
input leaves no file behind. ``PaperSession.open`` checks that the ledger belongs to the run it is
given (digest of the run's config and checkpoints) and that the feeds trade the account's symbols
(one, or several in order for a multi-asset account).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from market_metarl.envs.costs import CostModel
from market_metarl.live.alpaca_schema import BROKER_KINDS, broker_kind
from market_metarl.live.broker import Broker, PaperBroker
from market_metarl.live.feeds import Feed, open_feed
from market_metarl.live.ledger import Account, Ledger
from market_metarl.live.portfolio_schema import account_symbols, join_specs, split_specs
from market_metarl.live.settings import PaperConfig, paper_config
from market_metarl.meta.contracts import Agent
from market_metarl.meta.run import TrainedRun
from market_metarl.types import ConfigError, DataError, RunError


def run_digest(run: TrainedRun) -> str:
    """Identity of a trained run: its config digest, algorithm, seed and checkpoint bytes."""
    h = hashlib.sha256()
    h.update(json.dumps([run.config_digest, run.algo, run.seed]).encode())
    for name in sorted({run.algo, "pooled"}):
        path = run.path / "checkpoints" / f"{name}.pt"
        if not path.is_file():
            raise RunError(f"{run.path} has no {name} checkpoint; finish training it first")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def init_account(
    db: str | Path,
    run_path: str | Path,
    feed_spec: str | Sequence[str],
    *,
    cash: float | None = None,
    adapt_days: int | None = None,
    every: int | None = None,
    now: dt.datetime | None = None,
    settings: dict[str, Any] | None = None,
    broker: BrokerChoice | None = None,
    allocation: str | None = None,
) -> Account:
    """Create the ledger of a new paper account trading ``feed_spec`` with the run's policy.

    Args:
        db: Ledger file to create (must not exist).
        run_path: Trained run directory.
        feed_spec: Source of the bars (``yfinance:SPY``, or ``bundled:SPY``/``csv:FILE`` replayed);
            several (a list, or comma-separated) make a multi-asset account, one symbol each.
        cash: Initial cash (default: ``[paper] cash``).
        adapt_days: K (default: ``[paper] adapt_days``, else the run's ``train.adapt_days``).
        every: R (default: ``[paper] every``, else 20 like ``backtest --every``).
        now: Creation time (default: now, UTC).
        settings: ``[paper]`` keys that override the run's (strict, like the table).
        broker: The broker to trade through (default: the simulated paper broker).
        allocation: A multi-asset account's capital split, ``equal`` or ``inverse_vol``
            (default: ``[paper] allocation``; :mod:`market_metarl.meta.allocation`).

    Raises:
        RunError: Unknown or unfinished run, or the ledger exists already.
        ConfigError: Invalid ``[paper]`` settings or overrides, or broker options.
        DataError: The feed cannot be read.
    """
    # the cheap checks first: the ledger's path, the settings given, the feed; then the run
    db_path = _new_ledger_path(db)
    choice = broker or BrokerChoice()
    choice.check(cash)
    given = {"cash": cash, "adapt_days": adapt_days, "every": every, "allocation": allocation}
    overrides = {**(settings or {}), **{k: v for k, v in given.items() if v is not None}}
    paper_config({"paper": overrides})
    symbol, spec = _read_feeds(feed_spec)
    run = TrainedRun.open(run_path)
    digest = run_digest(run)
    run.agent("adapted"), run.agent("pooled")  # fail now, not at the first step
    setup = None
    if choice.kind == "alpaca":  # the account's cash is the Alpaca account's
        from market_metarl.live.alpaca import alpaca_setup

        overrides["cash"], setup = alpaca_setup(not choice.live, choice.url, symbol)
    cfg = paper_config({"paper": {**run.section("paper"), **overrides}}).resolved(run.adapt_days)
    created = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    account = _new_account(run, Path(run_path), digest, (symbol, spec), cfg, created)

    def write(conn: sqlite3.Connection) -> None:
        if setup is not None:
            setup(conn, created)

    Ledger.create(db_path, account, write).close()
    return account


def _new_account(
    run: TrainedRun,
    run_path: Path,
    digest: str,
    feed: tuple[str, str],
    cfg: PaperConfig,
    created: str,
) -> Account:
    """The account row of a new ledger; ``feed`` is its symbol and spec.

    The account's id is a hash of the run, the symbol and the creation time.
    """
    symbol, spec = feed
    return Account(
        account_id=hashlib.sha256(f"{digest}|{symbol}|{created}".encode()).hexdigest()[:10],
        run_path=str(run_path.resolve()),
        run_digest=digest,
        config_digest=run.config_digest,
        algo=run.algo,
        seed=run.seed,
        symbol=symbol,
        feed=spec,
        initial_cash=cfg.cash,
        adapt_days=cfg.adapt_days,
        every=cfg.every,
        settings=cfg.to_json(),
        origin=None,
        created=created,
    )


@dataclass(frozen=True)
class BrokerChoice:
    """The broker of a new account (``paper init --broker``), stored with it.

    Attributes:
        kind: ``sim`` (the simulated paper broker over the ledger) or ``alpaca`` (Alpaca's API;
            the account's cash is the Alpaca account's, which must hold no position).
        url: Alpaca's base URL (``APCA_API_BASE_URL`` overrides it; default: Alpaca's own).
        live: Alpaca's live (real money) account instead of the paper one.
        real_money: The confirmation ``live`` needs.
    """

    kind: str = "sim"
    url: str | None = None
    live: bool = False
    real_money: bool = False

    def check(self, cash: float | None) -> None:
        """Refuse options that do not go together (before anything is read)."""
        if self.kind not in BROKER_KINDS:
            raise ConfigError(
                f"--broker must be one of {', '.join(BROKER_KINDS)}, got {self.kind!r}"
            )
        if self.kind != "alpaca" and (self.live or self.url):
            raise ConfigError("--alpaca-live and --alpaca-url need --broker alpaca")
        if self.kind == "alpaca" and cash is not None:
            raise ConfigError(
                "--cash does not apply to --broker alpaca: the cash is the Alpaca account's"
            )
        if self.live and not self.real_money:
            raise ConfigError(
                "--alpaca-live trades REAL money on Alpaca's live account; add "
                "--i-know-this-is-real-money to confirm, or drop --alpaca-live for paper trading"
            )


def open_broker(ledger: Ledger, costs: CostModel) -> Broker:
    """The broker of the account in ``ledger``: Alpaca's (imports alpaca-py) or the paper one."""
    if broker_kind(ledger.conn) == "alpaca":
        from market_metarl.live.alpaca import AlpacaBroker

        return AlpacaBroker.open(ledger)
    return PaperBroker(ledger, costs)


def open_feeds(feed_spec: str | Sequence[str]) -> list[Feed]:
    """The feeds of a spec (``bundled:SPY``), a comma list of specs, or a list of specs.

    Raises:
        DataError: No feed, two feeds of one symbol, or feeds of different calendars.
    """
    specs = split_specs(feed_spec) if isinstance(feed_spec, str) else list(feed_spec)
    if not specs:
        raise DataError(f"--feed names no source ({feed_spec!r}); e.g. bundled:SPY,bundled:QQQ")
    feeds = [open_feed(spec) for spec in specs]
    symbols = [f.symbol for f in feeds]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        raise DataError(f"--feed lists {', '.join(twice)} twice; give each symbol once")
    calendars = {f.calendar.name for f in feeds}
    if len(calendars) > 1:
        raise DataError(
            f"--feed mixes exchange calendars ({', '.join(sorted(calendars))}); a multi-asset "
            "account steps its symbols on one calendar"
        )
    return feeds


def _read_feeds(feed_spec: str | Sequence[str]) -> tuple[str, str]:
    """Open and read every feed (bad data fails here); the symbols and specs, comma-joined."""
    feeds = open_feeds(feed_spec)
    for feed in feeds:
        feed.history()
    return join_specs([f.symbol for f in feeds]), join_specs([f.spec for f in feeds])


def _new_ledger_path(db: str | Path) -> Path:
    """``db``, checked to be a path a new ledger can be created at."""
    db_path = Path(db)
    if db_path.exists():
        raise RunError(f"ledger {db_path} exists already; step it, or choose a new --db")
    if not db_path.parent.is_dir():
        raise RunError(f"folder {db_path.parent} of --db does not exist; create it first")
    return db_path


@dataclass
class PaperSession:
    """An account opened for stepping: its ledger, run, agents, feed, cost model and broker."""

    ledger: Ledger
    account: Account
    run: TrainedRun
    adapted: Agent
    pooled: Agent
    feed: Feed
    costs: CostModel
    config: PaperConfig
    broker: Broker
    feeds: tuple[Feed, ...] = ()
    blocks: dict[str, Any] = field(default_factory=dict)
    """A multi-asset account's adapted agents by symbol, kept between the steps of this session
    (:class:`~market_metarl.live.sleeves.BlockState`)."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols the account trades, in order (one for a one-symbol account)."""
        return tuple(f.symbol for f in self.feeds) or (self.feed.symbol,)

    @classmethod
    def open(
        cls, db: str | Path, run_path: str | Path | None = None, feed_spec: str | None = None
    ) -> PaperSession:
        """Open the ledger at ``db`` with its run (or ``run_path``, which must be the same run).

        Raises:
            RunError: No ledger, or the ledger belongs to another run.
            DataError: The feed trades another symbol than the account.
        """
        ledger = Ledger.open(db)
        try:
            account = ledger.account()
            run = TrainedRun.open(run_path or account.run_path)
            if run_digest(run) != account.run_digest:
                raise RunError(
                    f"ledger {db} belongs to the run at {account.run_path} (digest "
                    f"{account.run_digest}), not to {run.path}; give that --run or a new --db"
                )
            pairs = account_symbols(ledger.conn)
            feeds = open_feeds(feed_spec or [f for _, f in pairs])
            feed = feeds[0]
            if [f.symbol for f in feeds] != [s for s, _ in pairs]:
                spec, symbol = (
                    join_specs([f.spec for f in feeds]),
                    join_specs([f.symbol for f in feeds]),
                )
                raise DataError(
                    f"feed {spec} trades {symbol} but ledger {db} trades "
                    f"{account.symbol}; give a feed of {account.symbol}"
                )
            config = PaperConfig.from_json(account.settings)
            costs = CostModel.from_spec(run.costs)
            return cls(
                ledger,
                account,
                run,
                run.agent("adapted"),
                run.agent("pooled"),
                feed,
                costs,
                config,
                open_broker(ledger, costs),
                tuple(feeds),
            )
        except BaseException:
            ledger.close()
            raise

    def close(self) -> None:
        """Close the ledger."""
        self.ledger.close()

    def __enter__(self) -> PaperSession:
        """The session itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the ledger."""
        self.close()

    def refresh(self) -> None:
        """Re-read the account row (its origin is set by the first step)."""
        self.account = self.ledger.account()
