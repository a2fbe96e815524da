"""Keeps a broken logger from killing a training run.

A full disk, a tracking server that went away or a buggy third-party backend should cost the user some
log lines, not hours of training. The policy:

* A :class:`~ptychodus_torch_plugin.errors.PtychodusTorchError` raised by ``start`` (a deliberate,
  user-fixable configuration problem, e.g. a missing optional package named with its extra, or a deleted
  MLflow experiment) propagates: the run stops before training begins, with one readable line.
* Any other error in ``start`` (tracking server unreachable, read-only or full disk, a bug in a third-party
  backend) is reported once as a warning and the logger is *disabled*: no further call reaches it (not even
  ``finish``), and training goes on without logging.
* Every error after ``start`` is reported once, counted, and swallowed; ``finish`` is still attempted.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PtychodusTorchError
from .base import MetricsLogger, RunStatus

_log = logging.getLogger(__name__)


class GuardedLogger(MetricsLogger):
    """Wraps any :class:`MetricsLogger`; see the module docstring for which errors pass through."""

    def __init__(self, inner: MetricsLogger, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or type(inner).__name__
        self.failures = 0
        """Number of calls after ``start`` that raised."""
        self.first_error: BaseException | None = None
        """The first such exception (``None`` while everything worked)."""
        self.disabled = False
        """``True`` once ``start`` failed: later calls are skipped, the run goes on without this logger."""

    def start(self) -> None:
        try:
            self.inner.start()
        except PtychodusTorchError as exc:
            exc.add_note(f"(while starting logger backend {self.name!r})")
            raise
        except Exception as exc:  # noqa: BLE001 - a logger that cannot start must not stop training
            self.disabled = True
            self._record("start", exc, consequence="Training continues without this logger.")

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        self._call("log_hyperparams", self.inner.log_hyperparams, params)

    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._call("log_metrics", self.inner.log_metrics, metrics, epoch=epoch, step=step)

    def log_step_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._call("log_step_metrics", self.inner.log_step_metrics, metrics, epoch=epoch, step=step)

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        self._call("log_image", self.inner.log_image, name, image, epoch=epoch, step=step)

    def log_artifact(self, path: Path) -> None:
        self._call("log_artifact", self.inner.log_artifact, path)

    def finish(self, status: RunStatus) -> None:
        """Reaches the wrapped logger however many calls failed before (unless its ``start`` failed)."""
        self._call("finish", self.inner.finish, status)

    def _call(self, method: str, func: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        if self.disabled:
            return
        try:
            func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the whole point is to keep training alive
            self._record(method, exc)

    def _record(self, method: str, exc: Exception, consequence: str | None = None) -> None:
        self.failures += 1
        _log.debug("logger backend %r failed in %s", self.name, method, exc_info=exc)
        if self.first_error is not None:
            return
        self.first_error = exc
        consequence = consequence or "Training continues; further errors from this logger are not reported."
        message = f"logger backend {self.name!r} failed in {method}: {type(exc).__name__}: {exc}. {consequence}"
        try:
            warnings.warn(message, RuntimeWarning, stacklevel=4)
        except Exception:  # warnings turned into errors (-W error) must not stop training either
            _log.warning(message)
