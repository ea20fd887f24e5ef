"""``market-metarl data list|show|fetch``: bundled datasets, sources and the download cache."""

from __future__ import annotations

import argparse

from market_metarl.cli._common import (
    EXIT_OK,
    Parser,
    SubParsers,
    add_json,
    print_json,
    text_to_stderr,
)


def register(sub: SubParsers) -> None:
    """Add ``data`` and its subcommands."""
    data = sub.add_parser("data", help="bundled datasets, sources and the download cache")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    p = data_sub.add_parser("list", help="bundled datasets and cached downloads")
    p.set_defaults(handler=data_list)
    p = data_sub.add_parser("show", help="rows, date range and validation report of a source")
    p.add_argument(
        "source",
        help="bundled:SPY, csv:FILE, yfinance:SPY or synthetic:NAME; csv:FILE?repair=drop drops "
        "isolated bad rows and lists each as a warning",
    )
    add_json(p)
    p.set_defaults(handler=data_show)
    p = data_sub.add_parser("fetch", help="download daily bars with yfinance into the cache")
    p.add_argument("symbols", nargs="+", metavar="SYMBOL")
    p.add_argument("--start", help="first date, YYYY-MM-DD (default: all history)")
    p.add_argument("--end", help="last date, YYYY-MM-DD (default: today)")
    p.set_defaults(handler=data_fetch)


def data_list(args: argparse.Namespace) -> int:
    """Print the bundled datasets (from the manifest) and the cached downloads."""
    import csv

    from market_metarl.data.paths import data_dir, list_cached

    print(f"{'symbol':<8} {'first':<10}  {'last':<10}  {'rows':>6}  licence")
    with (data_dir() / "MANIFEST.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            print(
                f"bundled:{row['symbol']:<8} {row['first_date']:<10}  {row['last_date']:<10}  "
                f"{row['rows']:>6}  {row['licence']}"
            )
    for symbol, path in list_cached():
        print(f"yfinance:{symbol:<7} (cached at {path})")
    return EXIT_OK


def data_show(args: argparse.Namespace) -> int:
    """Print a source's rows, date range, last bar and validation report."""
    from market_metarl.data.sources import load_bars_with_report

    bars, report = load_bars_with_report(args.source)
    last = bars.iloc[-1]
    with text_to_stderr(args):
        print(f"source   {args.source}")
        print(f"rows     {report.rows}")
        print(f"first    {bars.index[0].date()}")
        print(f"last     {bars.index[-1].date()}")
        print(f"columns  {', '.join(bars.columns)}")
        print(
            f"last bar open {last.open:.4f}  high {last.high:.4f}  low {last.low:.4f}  "
            f"close {last.close:.4f}  volume {last.volume:.0f}"
        )
        for note in report.notes:
            print(f"note     {note}")
        for warning in report.warnings:
            print(f"warning  {warning}")
        if not report.notes and not report.warnings:
            print("valid    no problems found")
    if args.json:
        print_json(
            {
                "source": args.source,
                "rows": report.rows,
                "first": bars.index[0].date().isoformat(),
                "last": bars.index[-1].date().isoformat(),
                "columns": list(bars.columns),
                "last_bar": {k: float(last[k]) for k in ("open", "high", "low", "close", "volume")},
                "notes": list(report.notes),
                "warnings": list(report.warnings),
            }
        )
    return EXIT_OK


def data_fetch(args: argparse.Namespace) -> int:
    """Download daily bars with yfinance into the cache and say what was written."""
    from market_metarl.data.yahoo import cache_path, fetch_yfinance

    reports = fetch_yfinance(args.symbols, start=args.start, end=args.end)
    for symbol, report in reports.items():
        first = report.first.date() if report.first is not None else "-"
        last = report.last.date() if report.last is not None else "-"
        print(f"{symbol}: {report.rows} rows {first} .. {last} -> {cache_path(symbol)}")
    return EXIT_OK
