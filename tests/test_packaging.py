"""environment.yml and pyproject.toml list the same dependencies; the README names the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def _pyproject_requirements() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project["dependencies"])
    for extra in ("dev", "lab", "attribution", "editing"):
        reqs += project["optional-dependencies"][extra]
    return {_norm(r) for r in reqs}


def _environment_pip_requirements() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    reqs, in_pip = set(), False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("- pip:"):
            in_pip = True
            continue
        if in_pip:
            if not stripped.startswith("- "):
                if stripped and not stripped.startswith("#"):
                    in_pip = False
                continue
            item = stripped[2:].strip()
            if not item.startswith("-e"):
                reqs.add(_norm(item))
    return reqs


def test_environment_matches_pyproject():
    env, proj = _environment_pip_requirements(), _pyproject_requirements()
    assert env == proj, f"only in environment.yml: {sorted(env - proj)}; only in pyproject: {sorted(proj - env)}"
    text = (ROOT / "environment.yml").read_text()
    assert "-e .[dev,lab,attribution,editing]" in text and "conda-forge" in text and re.search(r"python>=3\.10", text)


def test_no_upper_pins_on_torch_or_numpy():
    for req in _pyproject_requirements():
        name = re.split(r"[<>=!~\[;]", req)[0]
        if name in ("torch", "torchvision", "numpy"):
            assert "<" not in req, f"{req}: Colab ships its own torch/numpy; never pin them from above"


def test_ipywidgets_kept_below_8_compatible_range():
    assert "ipywidgets>=7.6,<9" in _pyproject_requirements()


def test_readme_names_demo_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "dataset-fashion-mnist" in ci
