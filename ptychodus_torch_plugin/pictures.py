"""PNG pictures of reconstructions, drawn with matplotlib's object API (no pyplot global state, no GUI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_object_figure(path: Path, obj: np.ndarray, truth: np.ndarray | None = None, title: str = "") -> Path:
    """Amplitude and phase side by side with colour bars; a second row with the truth when given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [("reconstruction", obj)] + ([("truth", truth)] if truth is not None else [])
    figure = Figure(figsize=(9, 4.2 * len(rows)), dpi=100)
    FigureCanvasAgg(figure)
    for r, (label, image) in enumerate(rows):
        for c, (kind, data, cmap) in enumerate(
            [("amplitude", np.abs(image), "gray"), ("phase (rad)", np.angle(image), "twilight")]
        ):
            axes = figure.add_subplot(len(rows), 2, 2 * r + c + 1)
            shown = axes.imshow(data, cmap=cmap, interpolation="nearest")
            axes.set_title(f"{label}: {kind}")
            axes.set_xlabel("col (px)")
            axes.set_ylabel("row (px)")
            figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def save_loss_figure(path: Path, epochs: list[int], series: dict[str, list[float]]) -> Path:
    """Loss curves per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for name, values in series.items():
        axes.plot(epochs[: len(values)], values, marker="o", label=name)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
