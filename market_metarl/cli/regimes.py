"""``market-metarl regimes``: slice a source into labelled regimes (CSV, plot, table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from market_metarl.cli._common import (
    EXIT_OK,
    SubParsers,
    UsageError,
    add_json,
    parse_param,
    print_json,
    text_to_stderr,
    write_text,
)


def register(sub: SubParsers) -> None:
    """Add ``regimes``."""
    p = sub.add_parser("regimes", help="slice a source into labelled regimes")
    p.add_argument("source", help="bundled:SPY, csv:FILE, yfinance:SPY or synthetic:NAME")
    p.add_argument("--method", required=True, choices=["window", "trend-vol", "hmm", "changepoint"])
    p.add_argument("--min-length", type=int, default=40, help="fewest bars per regime")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="method parameter"
    )
    p.add_argument("--out", help="write the regimes as CSV")
    p.add_argument("--plot", help="write a PNG of the price with regimes shaded")
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Slice the source, write the CSV and the plot if asked, print the regimes.

    The method's parameters and the output folders are checked before the source is read.
    """
    from market_metarl.data.regimes import check_request, regimes_to_frame, slice_regimes
    from market_metarl.data.sources import load_bars
    from market_metarl.data.tasks import symbol_name

    params = dict(parse_param(p) for p in args.param)
    check_request(args.method, args.min_length, params)
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path and not Path(path).parent.is_dir():
            raise UsageError(
                f"{option}: folder {Path(path).parent} does not exist; create it first"
            )
    bars = load_bars(args.source)
    found = slice_regimes(
        bars, args.method, symbol_name(args.source), args.min_length, args.seed, **params
    )
    frame = regimes_to_frame(found, bars)
    if args.out:
        write_text(Path(args.out), frame.to_csv(index=False))
    if args.plot:
        from market_metarl.data.plotting import plot_regimes

        plot_regimes(bars, found, args.plot, title=f"{args.source}: {args.method} regimes")
    with text_to_stderr(args):
        print(frame.to_string(index=False))
    if args.json:
        print_json(
            {
                "source": args.source,
                "method": args.method,
                "out": args.out,
                "plot": args.plot,
                "regimes": frame.to_dict(orient="records"),
            }
        )
    return EXIT_OK
