"""Matplotlib figures shared by the notebooks, the CLI and the widgets: pure functions returning a Figure, one module
per notebook's figures (`overview` holds the general ones)."""

from __future__ import annotations

from ._common import figure_to_png, to_display
from .attribution import render_attribution, support_figure
from .dvae import cap_sweep, signed_rows
from .frequency import dct_spectra, demo_figure, frequency_responses, kernel_grid
from .learning_speed import accuracy_curves, final_vs_peak, loss_curves, speed_vs_peak
from .overview import accuracy_heatmap, bar_table, image_grid, image_rows, learning_curves
from .poisons import render_perturbation, render_poison_grid
from .protonet import render_prototype_path, render_prototypes, render_reconstructions

__all__ = ["image_grid", "image_rows", "learning_curves", "bar_table", "accuracy_heatmap", "figure_to_png",
           "to_display", "render_poison_grid", "render_perturbation", "accuracy_curves", "loss_curves",
           "speed_vs_peak", "final_vs_peak", "signed_rows", "cap_sweep", "kernel_grid", "frequency_responses",
           "dct_spectra", "demo_figure", "render_attribution", "support_figure", "render_prototypes",
           "render_reconstructions", "render_prototype_path"]
