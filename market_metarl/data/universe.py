"""Universes: the ``[data]`` symbols of a config expanded to one source spec per asset.

An entry of ``symbols`` or ``heldout_symbols`` is a bare symbol (``SPY``, read with
``[data] source``), a source spec (``bundled:SPY``, ``csv:data/spy.csv``...), or a csv source
naming many files:

* a glob: ``csv:../shared/data/raw/stooq-momentum-invest/us/*.us.txt`` (``*``, ``**`` and
  ``[...]`` patterns; ``?`` starts the source's options, so it is no wildcard here);
* a directory: ``csv:path/to/dir/`` (its ``.csv``/``.txt`` files, also ``.gz``/``.bz2``/``.xz``/
  ``.zip``/``.zst`` compressed, not its sub-directories; hidden files are skipped).

Each expands to one ``csv:FILE`` source per file, sorted by path, so a universe is deterministic.
Relative paths are resolved as for every csv source: against the current working directory of the
process (not the config file's folder), so run commands from the repository root. Options on the
pattern (``csv:dir/*.txt?repair=drop``) carry over to each file.

Every asset has one symbol name (:func:`symbol_name`): the ``?name=`` option, else ``?symbol=``,
else the file name without its extensions and without the ``.us`` suffix of stooq and Kaggle
files (``spy.us.txt`` is ``SPY``). ``exclude`` entries then drop assets: a glob on the symbol
name (``SPY``, ``XL*``, case-insensitive), or, when it contains a ``/``, a glob on the file path
as expanded (``*/kaggle-huge-stock-market/ETFs/spy.us.txt``). An exclude entry that drops nothing
is an error (a typo would silently keep an asset in training), and so are two assets with one
name (say which to keep with ``exclude``, or name them apart with ``?name=``) and a held-out name
listed explicitly among the training symbols; a training glob or folder simply leaves out the
held-out names it would expand to.

With a ``drop`` repair policy, every csv source that does not set its own ``?repair=`` gets the
policy's options (``?repair=drop&repair_max_rows=3``), so every layer that loads the source drops
the same rows. Bundled and synthetic data are clean by construction and yfinance downloads are
validated before they are cached, so they are left as they are.
"""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from market_metarl.data.repair import RepairPolicy
from market_metarl.types import ConfigError, DataError

DATA_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
"""Suffixes of the files a ``csv:DIR/`` source expands to (optionally compressed)."""
COMPRESSED_SUFFIXES: tuple[str, ...] = (".gz", ".bz2", ".xz", ".zip", ".zst")
"""Compression suffixes pandas reads through."""
_GLOB_CHARS = frozenset("*[")


@dataclass(frozen=True)
class Asset:
    """One asset of a universe: its symbol name and the source spec its bars load from."""

    name: str
    source: str


@dataclass(frozen=True)
class Universe:
    """The expanded ``[data]`` symbols: training assets and held-out assets, each in order."""

    train: tuple[Asset, ...]
    heldout: tuple[Asset, ...] = ()


def source_of(symbol: str, default_kind: str) -> str:
    """Source spec of a ``[data]`` symbol (bare symbols use the default kind)."""
    return symbol if ":" in symbol else f"{default_kind}:{symbol}"


def symbol_name(symbol: str) -> str:
    """Symbol name of a ``[data]`` symbol or source spec (see the module docstring)."""
    if ":" not in symbol:
        return symbol.upper()
    kind, rest = symbol.split(":", 1)
    target, _, query = rest.partition("?")
    options = dict(parse_qsl(query))
    if kind == "csv":
        return (options.get("name") or options.get("symbol") or _file_symbol(target)).upper()
    if kind == "synthetic":
        return f"{target}-s{options.get('seed', '0')}"
    return target.upper()


def _file_symbol(path: str) -> str:
    name = Path(path).name
    for suffix in (COMPRESSED_SUFFIXES, (".csv", ".txt", ".tsv", ".parquet"), (".us",)):
        for s in suffix:
            if name.lower().endswith(s) and len(name) > len(s):
                name = name[: -len(s)]
                break
    return name


def expand_symbols(
    symbols: Sequence[str],
    source: str = "bundled",
    exclude: Sequence[str] = (),
    repair: RepairPolicy | None = None,
) -> tuple[Asset, ...]:
    """Expand a list of symbols, globs and directories into assets (a benchmark's universe).

    Args:
        symbols: Bare symbols, source specs, and csv globs or directories.
        source: Source kind of bare symbols.
        exclude: Globs on symbol names, or (with a ``/``) on file paths, of assets to drop.
        repair: Bad-row policy given to csv sources without their own ``?repair=``.

    Returns:
        One :class:`Asset` per file or symbol, in the order given (each glob sorted).

    Raises:
        DataError: A glob or directory with no data file.
        ConfigError: An exclude entry that drops nothing, or two assets with one name.
    """
    return expand_universe(symbols, (), source, exclude, repair).train


def expand_universe(
    symbols: Sequence[str],
    heldout: Sequence[str] = (),
    source: str = "bundled",
    exclude: Sequence[str] = (),
    repair: RepairPolicy | None = None,
) -> Universe:
    """Expand training and held-out symbols; ``exclude`` applies to both.

    An asset that a training glob or directory expands to and whose name is held out is left out
    of training (so ``symbols`` can name a whole folder and ``heldout_symbols`` a few of its files);
    a held-out name listed explicitly in ``symbols`` is an error.

    Raises:
        DataError: A glob or directory with no data file.
        ConfigError: An exclude entry that drops nothing, two assets with one name, or a held-out
            name that is also trained on.
    """
    policy = repair or RepairPolicy()
    held = [a for entry in heldout for a in _expand(source_of(entry, source), policy)]
    train, from_patterns = [], set()
    for entry in symbols:
        assets = _expand(source_of(entry, source), policy)
        if _is_pattern(source_of(entry, source)):
            from_patterns |= {a.source for a in assets}
        train += assets
    train, held = _exclude(train, held, exclude)
    held_names = {a.name for a in held}  # a glob or folder never trains a held-out name
    train = [a for a in train if not (a.source in from_patterns and a.name in held_names)]
    _check_names(train, "data.symbols")
    _check_names(held, "data.heldout_symbols")
    trained = {a.name: a for a in train}
    both = [a for a in held if a.name in trained]
    if both:
        pairs = "; ".join(f"{a.name} ({a.source} and {trained[a.name].source})" for a in both[:5])
        raise ConfigError(
            f"data.heldout_symbols {sorted({a.name for a in both})} also appear in data.symbols "
            f"({pairs}); a held-out symbol must not be trained on: exclude it from one of them"
        )
    return Universe(tuple(train), tuple(held))


def _expand(spec: str, policy: RepairPolicy) -> list[Asset]:
    """The assets of one source spec: one, or one per file of a csv glob or directory."""
    kind, _, rest = spec.partition(":")
    if kind.strip().lower() != "csv":
        return [Asset(symbol_name(spec), spec)]
    target, _, query = rest.partition("?")
    options = parse_qsl(query, keep_blank_values=True)
    if not any(k == "repair" for k, _ in options):
        options += list(policy.options())
    tail = "?" + "&".join(f"{k}={v}" for k, v in options) if options else ""
    specs = [f"csv:{path}{tail}" for path in _files(target.strip())]
    return [Asset(symbol_name(s), s) for s in specs]


def _is_pattern(spec: str) -> bool:
    """Whether a source spec is a csv glob or directory (expands to many files)."""
    kind, _, rest = spec.partition(":")
    target = rest.partition("?")[0].strip()
    if kind.strip().lower() != "csv":
        return False
    return bool(_GLOB_CHARS & set(target)) or target.endswith(("/", "\\")) or Path(target).is_dir()


def _files(target: str) -> list[str]:
    """The files a csv target names: itself, or the data files of a glob or directory."""
    where = "" if Path(target).is_absolute() else f" (relative to {Path.cwd()})"
    if _GLOB_CHARS & set(target):
        found = sorted(p for p in glob.glob(target, recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(
                f"csv:{target}: the pattern matches no file{where}; check the path and pattern"
            )
        return found
    if target.endswith(("/", "\\")) or Path(target).is_dir():
        if not Path(target).is_dir():
            raise DataError(f"csv:{target}: no such directory{where}; check the path")
        found = sorted(str(p) for p in Path(target).iterdir() if _is_data_file(p))
        if not found:
            raise DataError(
                f"csv:{target}: the directory holds no data file "
                f"({', '.join(DATA_SUFFIXES)}, optionally compressed){where}"
            )
        return found
    return [target]


def _is_data_file(path: Path) -> bool:
    name = path.name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return path.is_file() and not path.name.startswith(".") and name.endswith(DATA_SUFFIXES)


def _exclude(
    train: list[Asset], held: list[Asset], exclude: Sequence[str]
) -> tuple[list[Asset], list[Asset]]:
    """Drop the assets ``exclude`` matches; an entry that matches none is an error."""
    unused = [e for e in exclude if not any(_excluded(a, e) for a in (*train, *held))]
    if unused:
        names = sorted({a.name for a in (*train, *held)})
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise ConfigError(
            f"data.exclude {unused} match no symbol; fix or remove them (a symbol name glob like "
            f"'SPY', or a path glob with a '/'); the symbols are {shown}"
        )

    def keep(a: Asset) -> bool:
        return not any(_excluded(a, e) for e in exclude)

    return [a for a in train if keep(a)], [a for a in held if keep(a)]


def _excluded(asset: Asset, entry: str) -> bool:
    if "/" in entry:
        kind, _, rest = asset.source.partition(":")
        path = rest.partition("?")[0]
        return kind == "csv" and (fnmatch.fnmatchcase(path, entry) or path == entry)
    return fnmatch.fnmatchcase(asset.name, entry.upper())


def _check_names(assets: list[Asset], where: str) -> None:
    """Raise when two assets share a symbol name, naming both sources and how to fix it."""
    first: dict[str, Asset] = {}
    clashes: list[tuple[Asset, Asset]] = []
    for asset in assets:
        if asset.name in first:
            clashes.append((first[asset.name], asset))
        else:
            first[asset.name] = asset
    if not clashes:
        return
    a, b = clashes[0]
    if a.source == b.source:
        raise ConfigError(f"{where}: {a.source} is listed twice; list each asset once")
    more = sorted({x.name for x, _ in clashes[1:]} - {a.name})
    others = f" (so do {', '.join(more[:20])})" if more else ""
    raise ConfigError(
        f"{where}: {a.source} and {b.source} both resolve to the symbol name {a.name}{others}; "
        f"one asset per name: {_clash_fix(a, b)}"
    )


def _clash_fix(a: Asset, b: Asset) -> str:
    """How to keep one asset of two with one name: exclude a file by path, or rename it."""
    csv_one = next((x for x in (b, a) if x.source.startswith("csv:")), None)
    if csv_one is None:
        return "list only one of them"
    path = csv_one.source.partition(":")[2].partition("?")[0]
    return (
        f'drop one with data.exclude (e.g. exclude = ["{path}"]), or name it apart with '
        f"?name= (e.g. csv:{path}?name={a.name}_2)"
    )
