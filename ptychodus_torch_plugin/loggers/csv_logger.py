"""The ``csv`` backend (the default): plain files in the run's version folder, readable without any tool.

Layout, inside ``<output_dir>/lightning_logs/version_<N>/``:

* ``metrics.csv`` -- one *dense* row per epoch: ``epoch``, ``step``, then every metric key the trainer
  passed, in order of first appearance. Each row is flushed and fsync'ed as soon as it is written, so a
  killed run keeps every finished epoch. A key that appears later widens the header: the file is
  rewritten once (temp file + ``os.replace``), older rows get an empty cell.
* ``metrics_steps.csv`` -- only with ``per_step_metrics``: one row per optimiser step (same columns
  scheme). A separate file keeps ``metrics.csv`` exactly one row per epoch, with no half-empty rows.
* ``hparams.yaml`` -- the hyperparameters, one ``key: value`` line each (PyYAML's safe dumper).
* ``images/<name>_epoch<NNNN>.png`` -- pictures passed to ``log_image`` (greyscale, scaled to [0, 1]).
* ``artifacts.txt`` -- absolute paths of files passed to ``log_artifact``, one per line; files are not
  copied (model files already live in the output directory and can be large).

With ``resume`` the existing rows are kept; logging epoch ``e`` first drops any rows of epoch ``>= e``
(and, in ``metrics_steps.csv``, rows at or after the resumed step), so a resumed run has each epoch once.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from .. import hookimpl
from ._util import atomic_write_text, image_file_name, save_png
from .base import LoggerBackend, LoggerSettings, MetricsLogger, RunStatus

METRICS_FILE = "metrics.csv"
STEP_METRICS_FILE = "metrics_steps.csv"
HPARAMS_FILE = "hparams.yaml"
IMAGES_DIR = "images"
ARTIFACTS_FILE = "artifacts.txt"

_FIXED = ("epoch", "step")


def _plain(value: Any) -> Any:
    """A value the safe dumper writes and any YAML reader reads back as the same type: numpy scalars become
    Python's, and anything else that is not a plain scalar (paths, tuples...) its str()."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):  # numpy.bool_ is not a bool subclass
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def hparams_yaml(params: Mapping[Any, Any]) -> str:
    """A flat block mapping in the mapping's order, keys as strings."""
    # allow_unicode stays off: PyYAML would write some characters raw that its reader takes for line
    # breaks (U+0085), so non-ASCII text is written escaped, which every YAML reader reads back exactly
    return yaml.safe_dump({str(key): _plain(value) for key, value in params.items()}, sort_keys=False,
                          default_flow_style=False, width=float("inf"))


def _cell(value: Any) -> str:
    """A metric value as CSV text; floats keep full precision (``repr``), so they read back exactly."""
    if value is None:
        return ""
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _as_int(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "") else None
    except (ValueError, OverflowError):  # garbage, nan, inf
        return None


class CsvTable:
    """One CSV file of rows keyed by ``(epoch, step)`` whose header may widen over time.

    Rows are appended through an open handle and flushed one by one; only a new column or a resume that
    must drop stale rows rewrites the whole file, atomically.
    """

    def __init__(self, path: Path, *, per_step: bool, fsync: bool) -> None:
        self.path = Path(path)
        self.columns: list[str] = list(_FIXED)
        self._per_step = per_step
        self._fsync = fsync
        self._fh: IO[str] | None = None
        self._max_epoch = -1
        self._max_step = -1
        self._opened = False

    # --- opening -------------------------------------------------------------------------------------

    def open(self, keep_existing: bool) -> None:
        """Start the file afresh, or (``keep_existing``) continue an existing one."""
        if keep_existing and self.path.is_file():
            header, rows, clean = self._read()
            self.columns = list(_FIXED) + [c for c in header if c and c not in _FIXED]
            for row in rows:
                self._note(_as_int(row.get("epoch")), _as_int(row.get("step")))
            if not clean or header != self.columns:
                self._rewrite(rows, self.columns)
        else:
            atomic_write_text(self.path, self._format([self.columns]))
        self._fh = open(self.path, "a", encoding="utf-8", newline="")
        self._opened = True

    def _read(self) -> tuple[list[str], list[dict[str, str]], bool]:
        """Header, rows, and whether the file was clean (a killed writer can leave a partial last line)."""
        text = self.path.read_text(encoding="utf-8")
        clean = text == "" or text.endswith("\n")
        if not clean:
            text = text[: text.rfind("\n") + 1]
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        rows = [dict(zip(header, values, strict=False)) for values in reader if values]
        return header, rows, clean

    # --- writing -------------------------------------------------------------------------------------

    def append(self, values: Mapping[str, Any], *, epoch: int, step: int) -> None:
        """Add one row; drop stale rows and widen the header first when needed."""
        if self._fh is None:
            if not self._opened:
                raise RuntimeError(f"{self.path.name} is not open")
            self._fh = open(self.path, "a", encoding="utf-8", newline="")  # after a failed rewrite
        keys = [k for k in values if k not in _FIXED]
        new_columns = [k for k in keys if k not in self.columns]
        if new_columns or self._has_stale(epoch, step):
            self._fh.close()
            self._fh = None
            _, rows, _ = self._read()
            kept = [r for r in rows if not self._is_stale(r, epoch, step)]
            self._rewrite(kept, self.columns + new_columns)  # columns change only once this succeeded
            self.columns += new_columns
            self._max_epoch = self._max_step = -1
            for row in kept:
                self._note(_as_int(row.get("epoch")), _as_int(row.get("step")))
            self._fh = open(self.path, "a", encoding="utf-8", newline="")
        row = {k: _cell(values[k]) for k in keys}
        row.update(epoch=str(int(epoch)), step=str(int(step)))
        self._fh.write(self._format([[row.get(c, "") for c in self.columns]]))
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        self._note(int(epoch), int(step))

    def close(self) -> None:
        self._opened = False
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # --- helpers -------------------------------------------------------------------------------------

    def _note(self, epoch: int | None, step: int | None) -> None:
        if epoch is not None:
            self._max_epoch = max(self._max_epoch, epoch)
        if step is not None:
            self._max_step = max(self._max_step, step)

    def _has_stale(self, epoch: int, step: int) -> bool:
        if self._per_step:
            return self._max_epoch > epoch or self._max_step >= step
        return self._max_epoch >= epoch

    def _is_stale(self, row: Mapping[str, str], epoch: int, step: int) -> bool:
        row_epoch, row_step = _as_int(row.get("epoch")), _as_int(row.get("step"))
        if self._per_step:
            return (row_epoch is not None and row_epoch > epoch) or (
                row_step is not None and row_step >= step
            )
        return row_epoch is not None and row_epoch >= epoch

    def _rewrite(self, rows: list[dict[str, str]], columns: list[str]) -> None:
        lines = [columns] + [[row.get(c, "") for c in columns] for row in rows]
        atomic_write_text(self.path, self._format(lines))

    @staticmethod
    def _format(lines: list[list[str]]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(lines)
        return buf.getvalue()


class CsvLogger(MetricsLogger):
    """Writes the run's metrics, hyperparameters and pictures as plain files in ``run_dir``."""

    def __init__(self, settings: LoggerSettings) -> None:
        self.settings = settings
        self.run_dir = Path(settings.run_dir)
        self._epochs = CsvTable(self.run_dir / METRICS_FILE, per_step=False, fsync=True)
        self._steps: CsvTable | None = None
        self._hparams: dict[str, Any] = {}

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._epochs.open(keep_existing=self.settings.resume)

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        self._hparams.update(params)
        atomic_write_text(self.run_dir / HPARAMS_FILE, hparams_yaml(self._hparams))

    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._epochs.append(metrics, epoch=epoch, step=step)

    def log_step_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        if not self.settings.per_step_metrics:
            return
        if self._steps is None:  # created on first use: no empty file for runs that never log steps
            # Only flushed, not fsync'ed: one fsync per optimiser step would slow training down.
            self._steps = CsvTable(self.run_dir / STEP_METRICS_FILE, per_step=True, fsync=False)
            self._steps.open(keep_existing=self.settings.resume)
        self._steps.append(metrics, epoch=epoch, step=step)

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        save_png(self.run_dir / IMAGES_DIR / image_file_name(name, epoch), image)

    def log_artifact(self, path: Path) -> None:
        with open(self.run_dir / ARTIFACTS_FILE, "a", encoding="utf-8") as fh:
            fh.write(f"{Path(path).resolve()}\n")

    def finish(self, status: RunStatus) -> None:
        self._epochs.close()
        if self._steps is not None:
            self._steps.close()


@hookimpl
def ptychodus_torch_register_loggers() -> list[LoggerBackend]:
    return [
        LoggerBackend(
            name="csv",
            create=CsvLogger,
            description="metrics.csv (one row per epoch) and hparams.yaml in lightning_logs/version_<N>",
        )
    ]
