"""The paper table in one call: the CIFAR-10 ResNet-18 rows with published numbers, measured beside them.

Each row is one (attack, defense) cell judged by the profile's protocol (`paper`: ResNet-18, the AR paper's
100-epoch recipe) and the published final test accuracy of the same cell, with its source. `reproduce` runs the
rows through `experiments.run_experiment` (every step cached, so an interrupted table resumes at the first unfinished
row) and returns measured, published and the gap. Each published number names its source: the paper (arXiv id and
table) or the upstream README / leaderboard file at a fixed commit (`owner/repo:path@commit`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from .experiments import DataSpec, Result, run_experiment
from .training import Protocol


@dataclass(frozen=True)
class PaperRow:
    """One published cell: clean test accuracy (%) of ResNet-18 on CIFAR-10 trained on (attack, defense)."""

    attack: str
    defense: str
    published: float
    source: str
    attack_params: tuple[tuple[str, object], ...] = ()


_RSK = "Kim & Sandoval-Segura, AdvML-Frontiers @ NeurIPS 2024 (arXiv 2411.01742v2), Table 1"
_AR = ("AR README (Sandoval-Segura et al., NeurIPS 2022, arXiv 2206.03693; "
       "psandovalsegura/autoregressive-poisoning:README.md@bf350b0)")
_ISS = "ISS README (Liu et al., ICML 2023, arXiv 2301.13838; liuzrcc/ImageShortcutSqueezing:README.md@005d653)"
_APBENCH = "APBench leaderboard (apbench/apbench.github.io:leaderboard.md@c7d70d6)"

PAPER_ROWS: tuple[PaperRow, ...] = (
    PaperRow("none", "none", 94.34, f"{_RSK}, CIFAR-10"),
    PaperRow("ar", "none", 11.75, f"{_AR}, CIFAR-10 AR L2 eps 1"),
    PaperRow("ar", "jpeg", 85.15, f"{_ISS}, AR L2 1.0 + JPEG-10"),
    PaperRow("ar", "grayscale", 34.04, f"{_ISS}, AR L2 1.0 + grayscale"),
    PaperRow("em-samplewise", "none", 21.05, f"{_ISS}, EM L-inf 8"),
    PaperRow("em-samplewise", "grayscale", 93.01, f"{_ISS}, EM L-inf 8 + grayscale"),
    PaperRow("cuda", "none", 23.25, f"{_RSK}, CIFAR-10"),
    PaperRow("cuda", "adversarial-training", 44.40, f"{_RSK}, CIFAR-10"),
    PaperRow("cuda", "rsk+ff", 78.53, f"{_RSK}, CIFAR-10"),
    PaperRow("tap", "none", 6.27, f"{_APBENCH}, CIFAR-10 TAP Standard"),
    PaperRow("tap", "jpeg", 84.08, f"{_APBENCH}, CIFAR-10 TAP JPEG"),
    PaperRow("lsp", "none", 13.06, f"{_APBENCH}, CIFAR-10 LSP Standard"),
    PaperRow("lsp", "grayscale", 64.70, f"{_APBENCH}, CIFAR-10 LSP Gray"),
    PaperRow("ops", "none", 14.69, f"{_APBENCH}, CIFAR-10 OPS Standard"),
    PaperRow("ops", "cutout", 52.98, f"{_APBENCH}, CIFAR-10 OPS Cutout"),
    PaperRow("ar", "adversarial-training", 81.15, f"{_APBENCH}, CIFAR-10 AR AT"),
    PaperRow("em-samplewise", "jpeg", 80.72, f"{_APBENCH}, CIFAR-10 EM JPEG"),
)


@dataclass
class ReproducedRow:
    """A published row and what was measured for it (None until measured)."""

    row: PaperRow
    result: Result | None = None

    @property
    def measured(self) -> float | None:
        """Mean final test accuracy over seeds, in %."""
        return None if self.result is None else 100 * statistics.fmean(self.result.final)

    @property
    def std(self) -> float | None:
        if self.result is None or len(self.result.final) < 2:
            return None
        return 100 * statistics.stdev(self.result.final)

    @property
    def gap(self) -> float | None:
        """Measured minus published, in points."""
        return None if self.measured is None else self.measured - self.row.published

    def summary(self) -> dict:
        return {"attack": self.row.attack, "defense": self.row.defense, "published": self.row.published,
                "measured": self.measured, "std": self.std, "gap": self.gap, "source": self.row.source,
                "seeds": None if self.result is None else len(self.result.seeds)}


def reproduce(
    dataset: str | DataSpec,
    protocol: Protocol,
    seeds: int | list[int] = 1,
    rows: tuple[PaperRow, ...] | list[PaperRow] = PAPER_ROWS,
    attack_params: Callable[[str], dict] | None = None,
    on_row: Callable[[ReproducedRow, int, int], None] | None = None,
    device: str | None = "auto",
    quiet: bool = True,
) -> list[ReproducedRow]:
    """Measure every row of `rows` on `dataset` with `protocol`; cached, so a second call resumes.

    attack_params: a function attack name -> extra parameters (e.g. EM's profile); None = the attack defaults.
    on_row(row, done, total) is called after each row (to save the table so far).
    Raises ValueError for an unknown attack or defense (from `run_experiment`).
    """
    out: list[ReproducedRow] = []
    for i, row in enumerate(rows, 1):
        params = dict(row.attack_params)
        if attack_params is not None and row.attack != "none":
            params.update(attack_params(row.attack))
        result = run_experiment(row.attack, row.defense, dataset, protocol, seeds, attack_params=params or None,
                          baseline=False, device=device, quiet=quiet)
        out.append(ReproducedRow(row, result))
        if on_row is not None:
            on_row(out[-1], i, len(rows))
    return out


def format_reproduction(rows: list[ReproducedRow]) -> str:
    """Markdown table: attack, defense, measured (mean ± std), published, gap, source."""
    lines = ["| attack | defense | measured (%) | published (%) | gap (points) | source |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        measured = "-" if r.measured is None else f"{r.measured:.2f}" + ("" if r.std is None else f" ± {r.std:.2f}")
        gap = "-" if r.gap is None else f"{r.gap:+.2f}"
        lines.append(f"| {r.row.attack} | {r.row.defense} | {measured} | {r.row.published:.2f} | {gap} | "
                     f"{r.row.source} |")
    return "\n".join(lines)
