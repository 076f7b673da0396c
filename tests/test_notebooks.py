"""Notebooks: source and .ipynb agree, are stripped, are parametrised, and run at the smoke profile.

The notebooks are found by glob (`notebooks/NN_*.py`), so a new notebook is checked as soon as it exists.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from uel_helpers.notebook import REPO_URL
from uel_helpers.notebook_sync import drift, has_outputs, ipynb_path, notebook_from_py, notebook_sources

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupytext")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = notebook_sources(NOTEBOOKS_DIR)
IPYNBS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600  # per cell; the smoke profile needs seconds, the first import of torch can be slow


def _ids(paths):
    return [p.name for p in paths]


def test_there_are_notebooks():
    assert SOURCES, f"no notebook sources (NN_*.py) in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("py", SOURCES, ids=_ids(SOURCES))
def test_ipynb_matches_its_source(py):
    problems = drift(py)
    assert not problems, (
        f"{ipynb_path(py).name} has drifted from {py.name} (edit the .py, then run "
        "`python -m uel_helpers.notebook_sync`):\n" + "\n".join(problems)
    )


def test_every_ipynb_has_a_source():
    orphans = [p.name for p in IPYNBS if not p.with_suffix(".py").exists()]
    assert not orphans, f"notebooks without a py:percent source (the source of truth): {orphans}"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=_ids(IPYNBS))
def test_committed_ipynb_has_no_outputs(ipynb):
    found = has_outputs(ipynb)
    assert not found, f"{ipynb.name} must be committed without outputs: " + "; ".join(found)


@pytest.mark.parametrize("py", SOURCES, ids=_ids(SOURCES))
def test_exactly_one_parameters_cell(py):
    nb = notebook_from_py(py)
    tagged = [i for i, c in enumerate(nb.cells, 1) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{py.name}: cells tagged 'parameters': {tagged}; expected exactly one"
    cell = nb.cells[tagged[0] - 1]
    assert cell.cell_type == "code"
    assert re.search(r"^profile\s*=", cell.source, re.M), f"{py.name}: the parameters cell must set `profile`"
    assert re.search(r"^seed\s*=", cell.source, re.M), f"{py.name}: the parameters cell must set `seed`"


def _colab_url(notebook_name: str) -> str:
    owner_repo = REPO_URL.removeprefix("https://github.com/").removesuffix(".git").strip("/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{notebook_name}"


@pytest.mark.parametrize("py", SOURCES, ids=_ids(SOURCES))
def test_colab_badge_and_install_use_repo_url(py):
    nb = notebook_from_py(py)
    text = "\n".join(c.source for c in nb.cells)
    badge = _colab_url(ipynb_path(py).name)
    assert f"]({badge})" in text, f"{py.name}: no 'Open in Colab' badge linking to {badge}"
    colab_links = set(re.findall(r"https://colab\.research\.google\.com/github/[^\s)\"']+", text))
    assert colab_links == {badge}, f"{py.name}: Colab links {sorted(colab_links)}, expected only {badge}"

    code = [c.source for c in nb.cells if c.cell_type == "code"]
    install = next((src for src in code if "google.colab" in src), None)
    assert install is not None, f"{py.name}: no install cell guarded by `\"google.colab\" in sys.modules`"
    assert install is code[0], f"{py.name}: the Colab install cell must be the first code cell"
    assert '"google.colab" in sys.modules' in install
    assert f'REPO_URL = "{REPO_URL}"' in install, (
        f"{py.name}: the install cell must set REPO_URL = {REPO_URL!r} (uel_helpers.notebook.REPO_URL)"
    )
    assert re.search(r'^UEL_REF = "[^"]+"', install, re.M), f"{py.name}: the install cell must pin UEL_REF"
    assert "git+{REPO_URL}@{UEL_REF}" in install, f"{py.name}: install with pip's VCS syntax at UEL_REF"
    for flag in ("-U", "--upgrade", "--force-reinstall"):
        assert f'"{flag}"' not in install, f"{py.name}: the install cell must never upgrade Colab's packages"
    assert not re.search(r"(torch|numpy)[<>=!~]", install), (
        f"{py.name}: the install cell must not pin torch or numpy to a version of its own"
    )


# --- execution at the smoke profile ------------------------------------------------------------------


def _kernel_manager():
    """A kernel manager that starts an IPython kernel on *this* interpreter (the venv's), whatever kernelspecs
    are installed on the machine."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name=f"Python ({sys.executable})", language="python")

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


@pytest.mark.notebook
@pytest.mark.parametrize("py", SOURCES, ids=_ids(SOURCES))
def test_notebook_runs_at_smoke_profile(py, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    target = ipynb_path(py)  # the notebook users open; it matches its source (checked above)
    nb = nbformat.read(target, as_version=4) if target.exists() else notebook_from_py(py)
    probe = nbformat.v4.new_code_cell("import sys\nprint('KERNEL_PYTHON=' + sys.executable)")
    nb.cells.append(probe)
    env = {**os.environ, "UEL_PROFILE": "smoke", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg",
           "UEL_CACHE": str(tmp_path / "cache")}
    env.pop("UEL_DATA", None)
    client = nbclient.NotebookClient(nb, km=_kernel_manager(), timeout=CELL_TIMEOUT_S, allow_errors=False,
                                     extra_arguments=["--colors=NoColor"],
                                     resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    failure = None
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as err:
        failure = str(err)
    if failure is not None:
        pytest.fail(f"{py.name} failed at the smoke profile:\n{failure}", pytrace=False)
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    assert f"KERNEL_PYTHON={sys.executable}" in printed, f"the kernel ran another Python: {printed!r}"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.get("output_type") == "stream")
    assert "profile: smoke" in text, f"{py.name} did not run at the smoke profile (output: {text[:500]!r})"
