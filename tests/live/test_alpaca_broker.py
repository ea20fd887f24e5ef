"""The broker contract, passed by the paper broker and by the Alpaca broker (real alpaca-py client,
fake Alpaca server on 127.0.0.1); and the Alpaca broker under failures of the order POST."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("alpaca")

from market_metarl.envs.costs import CostModel
from market_metarl.live.alpaca import AlpacaBroker, OrderRefusedError, alpaca_setup
from market_metarl.live.alpaca_client import open_clients
from market_metarl.live.broker import Broker, OrderRequest, PaperBroker
from market_metarl.live.ledger import Account, Ledger
from market_metarl.types import CostSpec

DECIDED, NEXT = dt.date(2019, 3, 1), dt.date(2019, 3, 4)
CLOSE, OPEN = 280.0, 281.5


def account(cash: float) -> Account:
    return Account(
        account_id="acct0test",
        run_path="-",
        run_digest="-",
        config_digest="-",
        algo="maml",
        seed=0,
        symbol="SPY",
        feed="bundled:SPY",
        initial_cash=cash,
        adapt_days=10,
        every=5,
        settings="{}",
        origin=None,
        created="2019-03-01T00:00:00+00:00",
    )


def bars(days: list[dt.date], opens: list[float], closes: list[float]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(days), name="date")
    frame = {"open": opens, "high": opens, "low": closes, "close": closes, "volume": 1e6}
    return pd.DataFrame(frame, index=index)


@dataclass
class Pair:
    """A broker under test, its ledger, and how to move to the next open."""

    broker: Broker
    ledger: Ledger
    orders_at_broker: Callable[[], int]
    next_open: Callable[[dt.date, float], None]


def sim_pair(tmp_path: Path) -> Pair:
    ledger = Ledger.create(tmp_path / "sim.db", account(100_000.0))
    broker = PaperBroker(ledger, CostModel.from_spec(CostSpec(fee_bps=1.0, slippage_bps=2.0)))

    def next_open(day: dt.date, price: float) -> None:
        with ledger.transaction():
            broker.settle(bars([DECIDED, day], [CLOSE, price], [CLOSE, price]))

    count = lambda: len(ledger.conn.execute("SELECT * FROM orders").fetchall())  # noqa: E731
    return Pair(broker, ledger, count, next_open)


def alpaca_pair(tmp_path: Path, fake: Any) -> Pair:
    fake.evening(DECIDED.isoformat())
    cash, setup = alpaca_setup(True, None, "SPY")
    acc = account(cash)
    ledger = Ledger.create(tmp_path / "alpaca.db", acc, lambda conn: setup(conn, acc.created))
    broker = AlpacaBroker(ledger, open_clients(True, None), wait=0.01)

    def next_open(day: dt.date, price: float) -> None:
        fake.open_day(day.isoformat(), {"SPY": price})
        fake.evening(day.isoformat())
        assert broker.prepare() is None
        with ledger.transaction():
            broker.settle(bars([DECIDED, day], [CLOSE, price], [CLOSE, price]))

    return Pair(broker, ledger, lambda: len(fake.taken()), next_open)


@pytest.fixture(params=["sim", "alpaca"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    if request.param == "sim":
        made = sim_pair(tmp_path)
    else:
        made = alpaca_pair(tmp_path, request.getfixturevalue("fake_alpaca"))
    try:
        yield made
    finally:
        made.ledger.close()


def buy(weight: float = 0.5) -> OrderRequest:
    return OrderRequest("mmrl-acct0test-20190301-SPY", "SPY", weight, DECIDED, CLOSE)


# the contract


def test_a_new_account_holds_cash_only(pair: Pair) -> None:
    assert pair.broker.positions() == {}
    assert pair.broker.cash() == 100_000.0
    assert pair.broker.fills() == []
    assert pair.broker.order("mmrl-unknown") is None


def test_a_client_id_submitted_twice_is_one_order(pair: Pair) -> None:
    first = pair.broker.submit(buy())
    again = pair.broker.submit(buy(0.9))  # the same client id: the first order stands
    assert first == again
    assert (first.status, first.target_weight, first.decided) == ("submitted", 0.5, DECIDED)
    assert pair.orders_at_broker() == 1


def test_an_order_fills_at_the_next_open_and_the_book_follows(pair: Pair) -> None:
    order = pair.broker.submit(buy())
    pair.next_open(NEXT, OPEN)
    assert pair.broker.order(order.client_id).status == "filled"  # type: ignore[union-attr]
    (fill,) = pair.broker.fills()
    assert (fill.client_id, fill.date, fill.symbol, fill.price) == (
        order.client_id,
        NEXT,
        "SPY",
        OPEN,
    )
    shares = pair.broker.positions()["SPY"]
    assert shares == fill.shares
    # about half the equity in SPY, at the open (the paper broker's costs, Alpaca's whole shares)
    assert abs(shares * OPEN / 100_000.0 - 0.5) < 0.01
    assert pair.broker.cash() == pytest.approx(100_000.0 - shares * OPEN - fill.cost, abs=1e-6)
    assert pair.broker.fills(since=NEXT + dt.timedelta(days=1)) == []


# the Alpaca broker under failures


@pytest.fixture
def alpaca(tmp_path: Path, fake_alpaca: Any) -> Iterator[tuple[AlpacaBroker, Any]]:
    made = alpaca_pair(tmp_path, fake_alpaca)
    assert isinstance(made.broker, AlpacaBroker)
    try:
        yield made.broker, fake_alpaca
    finally:
        made.ledger.close()


def test_a_post_that_times_out_is_looked_up_not_resent(tmp_path: Path, fake_alpaca: Any) -> None:
    made = alpaca_pair(tmp_path, fake_alpaca)
    broker = AlpacaBroker(made.ledger, open_clients(True, None, timeout=0.2), wait=0.01)
    fake_alpaca.faults, fake_alpaca.delay = ["slow"], 1.0
    try:
        order = broker.submit(buy())
        (taken,) = fake_alpaca.taken()
        assert fake_alpaca.posts == 1
        assert sent(made.ledger, order.client_id)[:2] == ("sent", taken["id"])
    finally:
        made.ledger.close()


def sent(ledger: Ledger, cid: str) -> tuple[Any, ...]:
    return ledger.conn.execute(
        "SELECT a.state, a.alpaca_id, a.qty, a.wanted_qty, o.status FROM alpaca_orders a "
        "JOIN orders o USING (client_id) WHERE client_id = ?",
        (cid,),
    ).fetchone()


@pytest.mark.parametrize(
    ("fault", "posts"), [("504-after-accept", 1), ("drop", 1), ("429", 2), (None, 1)]
)
def test_a_failed_post_leaves_exactly_one_order(
    alpaca: tuple[AlpacaBroker, Any], fault: str | None, posts: int
) -> None:
    broker, fake = alpaca
    fake.faults = [fault] if fault else []
    order = broker.submit(buy())
    (taken,) = fake.taken()
    assert fake.posts == posts  # 504 and a dropped answer: looked up, never posted again
    state, alpaca_id, qty, wanted, status = sent(broker.ledger, order.client_id)
    assert (state, alpaca_id, status) == ("sent", taken["id"], "submitted")
    # OPG orders take whole shares: the target truncated, the unrounded quantity recorded
    assert (qty, taken["qty"], taken["time_in_force"]) == (178, "178", "opg")
    assert wanted == pytest.approx(0.5 * 100_000.0 / CLOSE)
    assert broker.submit(buy()) == order and len(fake.taken()) == 1  # and again: nothing sent


@pytest.mark.parametrize("fault", ["reject-403", "reject-422"])
def test_a_refused_order_is_one_clear_error_and_a_cancelled_order(
    alpaca: tuple[AlpacaBroker, Any], fault: str
) -> None:
    broker, fake = alpaca
    fake.faults = [fault]
    with pytest.raises(OrderRefusedError) as info:
        broker.submit(buy())
    text = str(info.value)
    assert "\n" not in text and "Alpaca refused order mmrl-acct0test-20190301-SPY" in text
    assert ("insufficient buying power" if fault == "reject-403" else "DAY orders") in text
    assert fake.taken() == [] and fake.posts == 1
    state, _, _, _, status = sent(broker.ledger, buy().client_id)
    assert (state, status) == ("rejected", "cancelled")
    broker.submit(buy())  # nothing is sent again for a refused client id
    assert fake.posts == 1


def test_an_order_not_sent_before_the_next_open_expires(alpaca: tuple[AlpacaBroker, Any]) -> None:
    broker, fake = alpaca
    with broker.ledger.transaction():  # written ahead, then the process died before the POST
        broker.stage(buy())
    fake.open_day(NEXT.isoformat(), {"SPY": OPEN})
    fake.evening(NEXT.isoformat())
    assert broker.prepare() is None
    assert fake.posts == 0  # it would fill a day late: expired, never sent
    assert sent(broker.ledger, buy().client_id)[::4] == ("expired", "cancelled")


def test_the_order_client_never_retries_and_reads_do(fake_alpaca: Any) -> None:
    clients = open_clients(True, None)
    assert (clients.orders._retry, clients.read._retry) == (0, 3)
    assert clients.url == fake_alpaca.url


def test_an_opg_order_in_the_window_is_refused_by_the_fake_too(
    alpaca: tuple[AlpacaBroker, Any],
) -> None:
    broker, fake = alpaca
    fake.now = fake.now.replace(hour=12)
    with pytest.raises(OrderRefusedError, match="9:28am"):
        broker.submit(buy())


def test_the_alpaca_tables_are_created_once_and_idempotently(
    alpaca: tuple[AlpacaBroker, Any],
) -> None:
    from market_metarl.live.alpaca_schema import alpaca_tables, broker_kind

    broker, _ = alpaca
    with broker.ledger.transaction():
        alpaca_tables(broker.ledger.conn)
    assert broker_kind(broker.ledger.conn) == "alpaca"
    assert broker_kind(sqlite3.connect(":memory:")) == "sim"
