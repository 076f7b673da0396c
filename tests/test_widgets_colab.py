"""Every explorer under this interpreter's ipywidgets and under Colab's ipywidgets 7.7.1; and what notebooks print.

- In process (ipywidgets 8 in `.venv`, 7.7.1 in `.venv-colab`): each explorer of `widgets.EXPLORERS` is built on
  smoke data (tests/explorer_cases.py) and every control is driven as a user would; each must change the picture
  (a control that would do nothing must be disabled), a busy mark is set during every redraw, the picture's width
  is its PNG's (no stretching), and its text form (a saved notebook without a kernel) is a sentence.
- Colab's version: the same, and changes sent by the browser coalesce into one redraw, in a subprocess whose
  `ipywidgets` is 7.7.1 from a `pip install --target` overlay (ipywidgets 7.7.1, widgetsnbextension 3.6,
  jupyterlab_widgets 1.1.1 for a 7.x frontend, ipython_genutils; no dependencies resolved, so nothing of
  ipywidgets 8 comes in), first on PYTHONPATH. Traitlets' "unrecognized arguments" warning is an error there: a
  keyword only ipywidgets 8 knows fails the test. The overlay is made once (from the package index) into
  `UEL_TEST_OVERLAYS` (default ~/.cache/uel_helpers-test-overlays); where it cannot be made (offline), the test
  skips, or fails under UEL_REQUIRE_BROWSER=1 (CI).
- Notebook output: a NotConvergedWarning names the user's line, not the package's; the smoke profile's expected
  EM round cap is one plain line, said once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from tests import explorer_cases
from uel_helpers.widgets import BUSY_HTML, EXPLORERS, PICTURE_MAX_PX, png_size

ROOT = Path(__file__).resolve().parents[1]
COLAB_IPYWIDGETS = explorer_cases.COLAB_IPYWIDGETS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _descendants(child)


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_explorer_drives_every_control_here(name):
    box = explorer_cases.build(name)
    c = box.controls
    busy_seen = []
    c["busy"].observe(lambda change: busy_seen.append(change["new"]), names="value")
    png = explorer_cases.picture_bytes(box)
    width, height = png_size(png)
    assert c["picture"].width == str(width) and width <= PICTURE_MAX_PX[0] and height <= PICTURE_MAX_PX[1]
    assert c["picture"].layout.align_self == "flex-start"  # not stretched to the output's width
    assert repr(box).startswith(f"[{box.kind} explorer: live widget") and len(repr(box)) <= 110
    problems = explorer_cases.drive_in_kernel(name, box)
    assert not problems, problems
    assert busy_seen[:2] == [BUSY_HTML, ""] and busy_seen.count(BUSY_HTML) >= len(explorer_cases.DRIVES[name]) - 1
    assert "error" not in c["info"].value.lower()
    for widget in _descendants(box):
        widget.get_state()  # every widget serialises for the frontend


COLAB_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    # a keyword that ipywidgets 7.7.1 does not know reaches traitlets as an unrecognized argument: make it an error
    warnings.filterwarnings("error", message=".*unrecognized arguments.*")
    import ipywidgets
    overlay = sys.argv[1]
    assert ipywidgets.__version__ == "7.7.1", ipywidgets.__version__
    assert ipywidgets.__file__.startswith(overlay), ipywidgets.__file__
    sys.path.insert(0, sys.argv[2])
    import explorer_cases
    from uel_helpers.widgets import EXPLORERS
    out = {"version": ipywidgets.__version__, "problems": {}}
    for name in EXPLORERS:
        box = explorer_cases.build(name)
        problems = explorer_cases.drive_in_kernel(name, box)
        if not isinstance(box.controls["picture"].value, bytes):
            problems.append("picture value is not bytes (ipywidgets 7 keeps bytes)")
        if len(repr(box)) > 110 or "live widget" not in repr(box):
            problems.append("text form: " + repr(box)[:120])
        stack = [box]
        while stack:
            widget = stack.pop()
            widget.get_state()
            stack.extend(getattr(widget, "children", ()))
            if not widget._model_module_version.startswith(("1.", "2.")):
                problems.append(f"{type(widget).__name__} model version {widget._model_module_version}")
        out["problems"][name] = problems
    # changes sent by the browser (set_state, as a comm message applies them) coalesce into one redraw here too
    import asyncio
    box = explorer_cases.build("sharpen")
    slider, draws = box.controls["image"], box.view.draws

    async def held_key():
        for value in (2, 3, 4):
            slider.set_state({"value": value})
        await asyncio.sleep(0.5)

    asyncio.run(held_key())
    out["coalesced"] = [box.view.draws - draws, "image 4 of" in box.controls["info"].value]
    print("RESULT " + json.dumps(out))
""")


def _overlay() -> Path:
    try:
        return explorer_cases.overlay(f"ipywidgets-{COLAB_IPYWIDGETS}", explorer_cases.IPYWIDGETS7_PINS, deps=False)
    except RuntimeError as err:
        if os.environ.get("UEL_REQUIRE_BROWSER") == "1":
            pytest.fail(str(err), pytrace=False)
        pytest.skip(str(err))


def test_every_explorer_under_colabs_ipywidgets_7_7_1(tmp_path):
    overlay = _overlay()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(overlay), str(ROOT)]), "MPLBACKEND": "Agg",
           "UEL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", COLAB_SCRIPT, str(overlay), str(ROOT / "tests")], env=env,
                          capture_output=True, text=True, timeout=600)
    result = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert proc.returncode == 0 and result, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    out = json.loads(result.removeprefix("RESULT "))
    assert out["version"] == COLAB_IPYWIDGETS
    assert set(out["problems"]) == set(EXPLORERS)
    bad = {name: p for name, p in out["problems"].items() if p}
    assert not bad, bad
    assert out["coalesced"] == [1, True], f"three changes from the browser gave {out['coalesced'][0]} redraws"


# --- what a notebook shows besides the explorers: warnings and notes ----------------------------------------

@pytest.fixture(scope="module")
def random_labels():
    from uel_helpers.data import ImageSet, synthetic_dataset

    ds = synthetic_dataset(n_per_class=6, num_classes=4, channels=3, size=8, seed=1)
    labels = ds.labels[torch.randperm(len(ds), generator=torch.Generator().manual_seed(3))]
    return ImageSet(ds.images, labels, ds.classes, name="random-labels")


def test_not_converged_warning_names_the_users_line(random_labels):
    from uel_helpers.poisons import make_poison
    from uel_helpers.poisons.em import NotConvergedWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_poison("em-classwise", random_labels, seed=0, max_rounds=1, profile="smoke", cache=False, device="cpu",
                    quiet=True)
    (w,) = [w for w in caught if issubclass(w.category, NotConvergedWarning)]
    assert w.filename == __file__, f"the warning points at {w.filename}:{w.lineno}, not at the caller"


def test_smoke_round_cap_is_one_plain_note(random_labels, capsys, monkeypatch):
    from uel_helpers import progress
    from uel_helpers.poisons import make_poison
    from uel_helpers.poisons.em import NotConvergedWarning

    monkeypatch.setattr(progress, "_said", set())

    kw = {"profile": "smoke", "cache": False, "device": "cpu", "lr": 1e-6}  # a surrogate that cannot learn
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotConvergedWarning)  # expected at smoke: no warning box
        first = make_poison("em-classwise", random_labels, seed=0, **kw)
        make_poison("em-classwise", random_labels, seed=1, **kw)
        make_poison("em-classwise", random_labels, seed=0, quiet=True, **kw)
    assert first.info["converged"] is False
    out = capsys.readouterr().out
    assert out.count("note: em-classwise stopped after the smoke profile's") == 1, out
