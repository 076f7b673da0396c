"""What long steps tell the user: `tqdm.auto` progress bars, warnings that point at the user's own call, and notes
said once in plain words.

Bars: `tqdm.auto` renders as a widget in Jupyter and Colab and as text in terminals; `quiet=True` (or
`TQDM_DISABLE=1`) hides it. A pseudo-terminal that reports a size of 0 x 0 (`script`, some CI runners and IDE
consoles) makes tqdm draw an empty line instead of its bar (0 columns, and 0 rows hide every bar); there the bar gets
a fixed size instead.

Warnings: `warnings.warn(..., stacklevel=user_stacklevel())` names the first frame outside this package (the
notebook cell or script line that called `make_poison`, say), however deep the package's own calls go (registry,
cache, attack). Notes: `say_once(key, text)` prints an expected, harmless condition once per process, as a line of
text rather than a warning box (e.g. the smoke profile's deliberately short EM run).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

FALLBACK_COLUMNS, FALLBACK_ROWS = 100, 24
PACKAGE_DIR = Path(__file__).resolve().parent
_said: set = set()


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


def user_stacklevel() -> int:
    """The `stacklevel` for `warnings.warn` called in the current function that names the first caller outside
    `uel_helpers` (the user's line), counted as `warnings.warn` counts (1 = the function that calls warn)."""
    frame = sys._getframe(1)  # the function about to call warnings.warn
    level = 1
    while frame is not None:
        try:
            inside = Path(frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)
        except (OSError, ValueError):
            inside = False
        if not inside:
            return level
        frame = frame.f_back
        level += 1
    return level


def say_once(key, text: str) -> bool:
    """Print `text` the first time `key` is seen in this process (a plain line on stdout, not a warning box); True
    when it was printed."""
    if key in _said:
        return False
    _said.add(key)
    print(text, flush=True)
    return True
