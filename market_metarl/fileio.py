"""Atomic file writes: the one place the toolkit writes a file that must never be seen half-done.

Every writer puts its bytes into a temporary sibling (same folder, so the rename stays on one
filesystem) and renames it over the target with :func:`os.replace`, which POSIX makes atomic: a
reader, or a process killed mid-write, sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def temporary_sibling(path: Path) -> Path:
    """The temporary name a write to ``path`` goes through (``.NAME.tmp-PID`` beside it)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it over ``path``.

    Args:
        path: The file to (re)place.
        write: Writes the whole content to the path it is given (``torch.save``,
            ``DataFrame.to_parquet``...).

    Raises:
        OSError: The write or the rename failed; the temporary file is removed and ``path`` is
            unchanged.
    """
    target = Path(path)
    tmp = temporary_sibling(target)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as sorted, indented JSON (with a final newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and non-finite floats as ``None``.

    Dicts (keys as text), lists and tuples are converted item by item; anything else is kept.
    Needs no numpy: its scalars are recognised by the ``numbers`` ABCs and ``.item()``.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool | str | None):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj) if math.isfinite(obj) else None
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        return json_safe(obj.item())  # np.bool_ and other scalars
    return obj
