"""PNG pictures of reconstructions, drawn with matplotlib's object API (no pyplot global state, no GUI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Largest side of an image drawn into a figure: the panels are a few hundred pixels wide, so larger
#: objects are thinned to this before drawing (a 7,000-pixel object would otherwise take GBs to draw).
DISPLAY_SIDE = 1200


def _display_frame(obj: np.ndarray, truth: np.ndarray | None, weights: np.ndarray | None):  # type: ignore[no-untyped-def]
    """Crop to the measured region, thin it to at most :data:`DISPLAY_SIDE` pixels a side, and remove the
    global phase offset, which no measurement determines (aligned to the truth when known, else to the
    region's mean phase), so pictures compare like with like."""
    if weights is not None and np.any(weights > 0):
        lit = weights >= 0.1 * weights.max()
        rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    else:
        box = (slice(None), slice(None))
    step = max(1, -(-max(obj[box].shape) // DISPLAY_SIDE))
    box = (slice(box[0].start, box[0].stop, step), slice(box[1].start, box[1].stop, step))
    obj = obj[box]
    truth = truth[box] if truth is not None else None
    reference = np.sum(truth * np.conj(obj)) if truth is not None else np.conj(np.sum(obj))
    return obj * np.exp(1j * np.angle(reference)), truth


def _shared_limits(images: list[np.ndarray], names: tuple[str, str]) -> dict[str, tuple[float, float]]:
    """Colour limits (0.5 and 99.5 percentiles) of amplitude and phase over all images together, so equal
    shades mean equal values across the panels; keyed by ``names`` (amplitude's, phase's)."""
    limits = {}
    for name, part in zip(names, (np.abs, np.angle)):
        values = np.concatenate([part(image).ravel() for image in images])
        limits[name] = (float(np.percentile(values, 0.5)), float(np.percentile(values, 99.5)))
    return limits


def save_object_figure(path: Path, obj: np.ndarray, truth: np.ndarray | None = None, title: str = "",
                       weights: np.ndarray | None = None) -> Path:
    """Amplitude and phase side by side with colour bars; a second row with the truth when given.

    With ``weights`` (the stitching weight map) only the measured region is shown. Reconstruction and
    truth share colour limits, so equal shades mean equal values.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    obj, truth = _display_frame(np.asarray(obj), truth, weights)
    rows = [("reconstruction", obj)] + ([("truth", truth)] if truth is not None else [])
    limits = _shared_limits([image for _, image in rows], ("amplitude", "phase (rad)"))
    figure = Figure(figsize=(9, 4.2 * len(rows)), dpi=100)
    FigureCanvasAgg(figure)
    for r, (label, image) in enumerate(rows):
        for c, (kind, data, cmap) in enumerate(
            [("amplitude", np.abs(image), "gray"), ("phase (rad)", np.angle(image), "viridis")]
        ):
            axes = figure.add_subplot(len(rows), 2, 2 * r + c + 1)
            low, high = limits[kind]
            shown = axes.imshow(data, cmap=cmap, interpolation="nearest", vmin=low, vmax=high)
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


def save_comparison_figure(path: Path, rows: list[tuple[str, np.ndarray]], truth: np.ndarray | None,
                           weights: np.ndarray, captions: dict[str, str] | None = None) -> Path:
    """Several reconstructions of one scan side by side (one row each: amplitude, phase), the truth last,
    all cropped to the measured region, with shared colour limits and a caption per row (scores, time)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    captions = captions or {}
    shown = [(name, _display_frame(np.asarray(obj), truth, weights)[0]) for name, obj in rows]
    if truth is not None:
        shown.append(("truth", _display_frame(np.asarray(truth), truth, weights)[0]))
    limits = _shared_limits([image for _, image in shown], ("amplitude", "phase"))
    figure = Figure(figsize=(8, 3.6 * len(shown)), dpi=90)
    FigureCanvasAgg(figure)
    for r, (name, image) in enumerate(shown):
        for c, (kind, data, cmap) in enumerate((("amplitude", np.abs(image), "gray"),
                                                ("phase", np.angle(image), "viridis"))):
            axes = figure.add_subplot(len(shown), 2, 2 * r + c + 1)
            low, high = limits[kind]
            axes.imshow(data, cmap=cmap, interpolation="nearest", vmin=low, vmax=high)
            axes.set_title(f"{name}: {kind}", fontsize=10)
            axes.set_xticks([])
            axes.set_yticks([])
            if c == 0 and name in captions:
                axes.set_ylabel(captions[name], fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
