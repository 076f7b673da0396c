"""Progress bars: `tqdm.auto` (Jupyter, Colab, terminals), silenced by `quiet`, visible on zero-width terminals.

A pseudo-terminal that reports a size of 0 x 0 (`script`, some CI runners and IDE consoles) makes tqdm draw an
empty line instead of its bar (0 columns, and 0 rows hide every bar); there the bar gets a fixed size instead.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

FALLBACK_COLUMNS, FALLBACK_ROWS = 100, 24


def _zero_width_terminal() -> bool:
    """True when stderr is a terminal that reports 0 columns."""
    try:
        return sys.stderr.isatty() and os.get_terminal_size(sys.stderr.fileno()).columns == 0
    except (AttributeError, OSError, ValueError):
        return False


def progress(iterable=None, *, quiet: bool = False, **kwargs) -> tqdm:
    """A `tqdm.auto` bar over `iterable` (or with `total=`); `quiet=True` hides it, as does `TQDM_DISABLE=1`."""
    if _zero_width_terminal():
        kwargs.setdefault("ncols", FALLBACK_COLUMNS)
        kwargs.setdefault("nrows", FALLBACK_ROWS)
    return tqdm(iterable, disable=quiet or None, **kwargs)
