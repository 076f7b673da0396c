"""Progress bars stay visible on a zero-size pseudo-terminal, and a real pty shows the demo's bar."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

import pytest

from uel_helpers import progress as progress_module
from uel_helpers.progress import FALLBACK_COLUMNS, FALLBACK_ROWS, progress


def test_zero_size_terminal_gets_a_fixed_size(monkeypatch):
    calls = []
    monkeypatch.setattr(progress_module, "tqdm", lambda iterable=None, **kw: calls.append(kw))
    monkeypatch.setattr(progress_module, "_zero_width_terminal", lambda: True)
    progress(total=2)
    assert (calls[-1]["ncols"], calls[-1]["nrows"]) == (FALLBACK_COLUMNS, FALLBACK_ROWS)
    assert calls[-1]["disable"] is None  # shown unless TQDM_DISABLE or a non-terminal says otherwise
    progress(total=2, ncols=50)
    assert calls[-1]["ncols"] == 50
    monkeypatch.setattr(progress_module, "_zero_width_terminal", lambda: False)
    progress(total=2)
    assert "ncols" not in calls[-1] and "nrows" not in calls[-1]
    progress(total=2, quiet=True)
    assert calls[-1]["disable"] is True


def _run_in_pty(argv: list[str], env: dict, timeout: float = 120.0) -> str:
    """Run a command with stdout/stderr on a fresh pseudo-terminal (0 x 0, as `script` gives) and return its output."""
    try:
        leader, follower = pty.openpty()
    except OSError as err:  # a container without /dev/ptmx: nothing to show a bar on
        pytest.skip(f"no pseudo-terminal here: {err}")
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_demo_shows_its_progress_bar_on_a_terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM")}
    env["UEL_CACHE"] = str(tmp_path / "cache")
    out = _run_in_pty([sys.executable, "-m", "uel_helpers.cli", "demo", "--dataset", "digits", "--profile", "smoke",
                       "--out", str(tmp_path / "results")], env)
    if "train smoke" not in out and "error" in out.lower():
        pytest.fail(out[-2000:])
    assert "train smoke" in out and "epoch" in out, out[-2000:]  # tqdm's bar: desc, unit, loss/test postfix
    assert "test=" in out


def test_user_stacklevel_names_the_first_caller_outside_the_package():
    """However deep the package's own frames go (registry, cache, attack), the warning names the user's line."""
    import warnings

    src = ("import warnings\nfrom uel_helpers.progress import user_stacklevel\n"
           "def attack():\n    warnings.warn('weak', UserWarning, stacklevel=user_stacklevel())\n"
           "def registry():\n    attack()\n")
    namespace: dict = {}
    exec(compile(src, str(progress_module.PACKAGE_DIR / "inner.py"), "exec"), namespace)  # frames "inside"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace["registry"]()  # this line is the user's
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, sys._getframe().f_lineno - 1)]


def test_say_once_prints_a_plain_line_once_per_key(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "_said", set())
    assert progress_module.say_once("k", "note: short run") is True
    assert progress_module.say_once("k", "note: short run") is False
    assert progress_module.say_once("other", "note: other") is True
    assert capsys.readouterr().out == "note: short run\nnote: other\n"
