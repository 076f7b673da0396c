"""Notebook sources and their generated `.ipynb`: regenerate (`sync`) and check (`drift`).

The source of truth of every notebook is `notebooks/NN_name.py` in jupytext's py:percent format. The
`.ipynb` beside it is generated from it, without outputs or execution counts, with deterministic cell
ids (so that regenerating an unchanged source gives the same file, byte for byte) and with the cell tags
of the source (e.g. `parameters`). `drift()` lists what differs between the two; a test fails on any.

    python -m uel_helpers.notebook_sync            # regenerate every notebooks/NN_*.py -> .ipynb
    python -m uel_helpers.notebook_sync --check    # only report drift (exit status 1 when any)

jupytext is a development dependency (`pip install -e ".[dev]"`); it is imported only when needed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

NOTEBOOK_GLOB = "[0-9][0-9]_*.py"
# Cell metadata kept in the .ipynb (jupytext's own bookkeeping keys are dropped).
KEPT_CELL_METADATA = ("tags",)
NOTEBOOK_METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
    "jupytext": {"formats": "ipynb,py:percent"},
    "accelerator": "GPU",  # Colab: ask for a GPU runtime when the notebook is opened there
}


def _jupytext():
    try:
        import jupytext
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "uel_helpers.notebook_sync needs jupytext (a development dependency): "
            'pip install jupytext, or pip install -e ".[dev]" in the repository'
        ) from err
    return jupytext


def _nbformat():
    try:
        import nbformat
    except ImportError as err:  # pragma: no cover - jupytext depends on nbformat
        raise ImportError("uel_helpers.notebook_sync needs nbformat: pip install nbformat") from err
    return nbformat


def ipynb_path(py_path: str | Path) -> Path:
    """The generated notebook that belongs to a py:percent source."""
    return Path(py_path).with_suffix(".ipynb")


def _cell_ids(sources: list[str]) -> list[str]:
    """Content-based ids: a cell keeps its id while its source is unchanged; duplicates get a suffix."""
    ids, seen = [], {}
    for src in sources:
        base = hashlib.sha1(src.encode("utf-8")).hexdigest()[:8]
        n = seen.get(base, 0)
        seen[base] = n + 1
        ids.append(base if n == 0 else f"{base}-{n}")
    return ids


def notebook_from_py(py_path: str | Path):
    """Read a py:percent source into a clean nbformat v4 notebook (no outputs, no execution counts)."""
    jupytext, nbformat = _jupytext(), _nbformat()
    py_path = Path(py_path)
    if not py_path.exists():
        raise FileNotFoundError(f"no notebook source at {py_path}")
    nb = jupytext.read(py_path, fmt="py:percent")
    clean = nbformat.v4.new_notebook()
    clean.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    sources = [cell.source for cell in nb.cells]
    for cell, cell_id in zip(nb.cells, _cell_ids(sources), strict=True):
        meta = {k: cell.metadata[k] for k in KEPT_CELL_METADATA if k in cell.metadata}
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(cell.source, metadata=meta)
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.source, metadata=meta)
        else:
            new = nbformat.v4.new_raw_cell(cell.source, metadata=meta)
        new.id = cell_id
        clean.cells.append(new)
    nbformat.validate(clean)
    return clean


def sync(py_path: str | Path) -> Path:
    """Regenerate the `.ipynb` beside `py_path` from it; returns the path written."""
    nbformat = _nbformat()
    nb = notebook_from_py(py_path)
    out = ipynb_path(py_path)
    text = nbformat.writes(nb, version=4) + "\n"
    if not out.exists() or out.read_text(encoding="utf-8") != text:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    return out


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _first_difference(want: str, have: str) -> str:
    """'line N: <source line> vs <notebook line>' for the first line where two cell sources differ."""
    a, b = want.splitlines(), have.splitlines()
    for n in range(max(len(a), len(b))):
        x = a[n] if n < len(a) else "<no line>"
        y = b[n] if n < len(b) else "<no line>"
        if x != y:
            return f"line {n + 1}: {_short(x)!r} in the .py, {_short(y)!r} in the .ipynb"
    return "trailing whitespace or newlines differ"


def drift(py_path: str | Path) -> list[str]:
    """Differences between a py:percent source and its `.ipynb` (cell count, types, sources, tags).

    An empty list means the `.ipynb` is what `sync()` would generate (outputs aside: see
    `has_outputs`). Each entry is a sentence naming the cell (1-based) and what differs.
    """
    nbformat = _nbformat()
    py_path = Path(py_path)
    target = ipynb_path(py_path)
    if not target.exists():
        return [f"{target.name} is missing; run `python -m uel_helpers.notebook_sync` to generate it"]
    want = notebook_from_py(py_path)
    have = nbformat.read(target, as_version=4)
    problems = []
    if len(want.cells) != len(have.cells):
        problems.append(f"{py_path.name} has {len(want.cells)} cells but {target.name} has {len(have.cells)}")
    for i, (w, h) in enumerate(zip(want.cells, have.cells, strict=False), start=1):
        if w.cell_type != h.cell_type:
            problems.append(f"cell {i}: type {w.cell_type} in {py_path.name}, {h.cell_type} in {target.name}")
        if w.source != h.source:
            problems.append(f"cell {i}: source differs at {_first_difference(w.source, h.source)}")
        w_tags, h_tags = list(w.metadata.get("tags", [])), list(h.metadata.get("tags", []))
        if w_tags != h_tags:
            problems.append(f"cell {i}: tags {w_tags} in {py_path.name}, {h_tags} in {target.name}")
    return problems


def has_outputs(ipynb: str | Path) -> list[str]:
    """Cells of a committed `.ipynb` that carry outputs or execution counts (they should be stripped)."""
    nb = _nbformat().read(Path(ipynb), as_version=4)
    found = []
    for i, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {i} has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {i} has execution count {cell.execution_count}")
    return found


def notebook_sources(folder: str | Path = "notebooks") -> list[Path]:
    """The py:percent notebook sources in `folder` (named NN_*.py), in teaching order."""
    return sorted(Path(folder).glob(NOTEBOOK_GLOB))


def sync_all(folder: str | Path = "notebooks") -> list[Path]:
    """Regenerate every `folder/NN_*.ipynb` from its `.py`; returns the notebooks written."""
    sources = notebook_sources(folder)
    if not sources:
        raise FileNotFoundError(f"no notebook sources ({NOTEBOOK_GLOB}) in {Path(folder).resolve()}")
    return [sync(p) for p in sources]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m uel_helpers.notebook_sync",
        description="regenerate notebooks/NN_*.ipynb from their py:percent sources",
    )
    parser.add_argument("folder", nargs="?", default="notebooks")
    parser.add_argument("--check", action="store_true", help="report drift and outputs; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        bad = 0
        for py in notebook_sources(args.folder):
            problems = drift(py)
            if ipynb_path(py).exists():
                problems += has_outputs(ipynb_path(py))
            for p in problems:
                print(f"{py.name}: {p}")
            bad += bool(problems)
        print(f"{bad} notebook(s) out of date" if bad else "all notebooks match their sources")
        return 1 if bad else 0
    for path in sync_all(args.folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
