"""ptychodus reconstructors, running in ptychodus's process: one ``TrainableReconstructor`` per registered
model type (reconstructing with its network), one per registered reconstructor that needs a model (e.g.
``pinn+iterative``, trained as a ``pinn``), and a plain ``Reconstructor`` per one that needs none (e.g.
``iterative``, which starts from ptychodus's current object and probe).

Why in-process rather than ptychodus's ``SubprocessReconstructor``: our backend is plain PyTorch with no
global framework state, ptychodus already runs reconstruct/train in a worker thread, the loaded model
stays in memory between reconstructions, and the subprocess adapter can block forever if its child dies
before it starts. GPU memory is returned to the driver after each run (``torch.cuda.empty_cache``).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from ptychodus.api.product import LossValue
from ptychodus.api.reconstruct import (
    ReconstructInput,
    Reconstructor,
    ReconstructOutput,
    TrainableReconstructor,
    TrainOutput,
)

from .. import hookimpl
from ..data.npz import save_npz
from ..errors import ConfigError
from ..models.base import ModelType
from ..plugins import PluginHost
from ..reconstructors.base import ProgressEvent, Reconstruction, ReconstructRequest
from .convert import input_to_scan, reconstruction_to_product
from .settings import TorchSettings

#: Stem ptychodus's batch layout uses for the model file (``StandardFileLayout.MODEL_BASENAME``).
MODEL_BASENAME = "model"
MODEL_FILE_EXTENSION = ".pt"

_log = logging.getLogger(__name__)


T = TypeVar("T")


class _EpochRelay:
    """Trainer plugin that forwards each finished epoch to the thread iterating :meth:`train`."""

    def __init__(self, emit: Callable[[Any], None]) -> None:
        self._emit = emit

    @hookimpl
    def ptychodus_torch_epoch_end(self, run: Any, epoch: int, metrics: dict[str, float]) -> None:
        self._emit((epoch, dict(metrics)))


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Worker(Generic[T]):
    """Runs ``work(emit)`` in a thread; iterating yields what it emits, then :attr:`result` holds its
    return value. An exception in the thread is raised in the iterating one. Why a thread: ptychodus
    iterates our generators for progress, while the work itself is one blocking call."""

    def __init__(self, work: Callable[[Callable[[Any], None]], T], name: str) -> None:
        self._work = work
        self._name = name
        self.result: T | None = None

    def __iter__(self) -> Iterator[Any]:
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def target() -> None:
            try:
                events.put(("done", self._work(lambda payload: events.put(("event", payload)))))
            except BaseException as error:  # handed to the iterating thread and re-raised there
                events.put(("error", error))

        worker = threading.Thread(target=target, name=self._name, daemon=True)
        worker.start()
        while True:
            kind, payload = events.get()
            if kind == "event":
                yield payload
                continue
            worker.join()
            _release_gpu_memory()
            if kind == "error":
                raise payload
            self.result = payload
            return


def _reconstruct(host: PluginHost, settings: TorchSettings, reconstructor: str, parameters: ReconstructInput,
                 goal: int, model: Any = None, initial_object: Any = None) -> Iterator[ReconstructOutput]:
    """Run a registered reconstructor on ptychodus's input. ptychodus saves every product yielded (batch
    mode: one file each), so the current object is yielded only every ``snapshot_every`` epochs, then the
    result at progress ``goal``."""
    import numpy as np

    from ..reconstructors.run import run_reconstructor

    scan = input_to_scan(parameters)
    execution = settings.execution_config()
    run = settings.run_config()
    device = host.resolve_device(execution.accelerator)

    def work(emit: Callable[[Any], None]) -> Reconstruction:
        def progress(event: Any) -> None:
            """On the worker thread: the object is a live view, so a snapshot is copied here."""
            if isinstance(event, ProgressEvent) and event.unit == "epoch" and event.object is not None \
                    and snapshot_due(event.done, event.total, run.snapshot_every):
                emit((event.done, event.object.detach().to("cpu", copy=True).numpy()))

        request = ReconstructRequest(scan=scan, device=device, model=model, initial_object=initial_object,
                                     options=settings.reconstructor_options(reconstructor),
                                     performance=execution.performance, progress=progress)
        return run_reconstructor(host, reconstructor, request)

    worker: _Worker[Reconstruction] = _Worker(work, f"ptychodus-torch-{reconstructor}")
    for done, snapshot in worker:
        current = Reconstruction(object=snapshot, weights=np.ones(snapshot.shape, np.float32),
                                 n_patterns=scan.n_patterns)
        yield ReconstructOutput(product=reconstruction_to_product(current, parameters.product), progress=done,
                                status=0)
    assert worker.result is not None
    yield ReconstructOutput(product=reconstruction_to_product(worker.result, parameters.product), progress=goal,
                            status=0)


def snapshot_due(epoch: int, total: int, every: int) -> bool:
    """Epoch ``epoch`` (1-based) is a snapshot: every ``every`` epochs, never the last (the result follows)."""
    return every > 0 and epoch % every == 0 and epoch < total


class TorchReconstructor(TrainableReconstructor):
    """Reconstruct with a loaded model file (through the registered ``reconstructor``, by default the
    network alone); train a new model of ``model_type`` from ptychodus data."""

    def __init__(self, model_type: ModelType, settings: TorchSettings, host: PluginHost,
                 reconstructor: str = "pinn", name: str | None = None) -> None:
        self._model_type = model_type
        self._settings = settings
        self._host = host
        self._reconstructor = reconstructor
        self._name = name or model_type.name
        self._model: Any = None
        self._model_config: Any = None
        self._model_info: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    def get_progress_goal(self) -> int:
        return self._settings.max_epochs.get_value()

    # -- model file -------------------------------------------------------------------------------------

    def is_model_loaded(self) -> bool:
        return self._model is not None

    def get_model_file_filter(self) -> str:
        return f"ptychodus-torch model (*{MODEL_FILE_EXTENSION})"

    def get_model_file_extension(self) -> str:
        return MODEL_FILE_EXTENSION

    def load_model_from_file(self, file_path: Path) -> None:
        from ..models.model_file import load_model

        model, config, info = load_model(Path(file_path), self._host)
        if config.model_type.casefold() != self._model_type.name.casefold():
            _log.warning("%s holds a '%s' model; reconstructing with it through '%s'",
                         file_path, config.model_type, self._model_type.name)
        self._model, self._model_config, self._model_info = model.cpu(), config, info
        _log.info("loaded %s (%s, N=%s)", file_path, config.model_type, config.patch_size)

    def save_model(self, file_path: Path) -> None:
        from ..models.model_file import save_model

        if self._model is None:
            raise ConfigError("no model to save: train one or load a model file first")
        save_model(self._model, self._model_config, Path(file_path), self._model_info)

    def _require_model(self) -> Any:
        if self._model is None:
            path = self._settings.model_file_path()
            if path is None:
                raise ConfigError(
                    f"'{self.name}' has no model: load a {MODEL_FILE_EXTENSION} model file, train one, or set "
                    "[PtychodusTorch] model_file"
                )
            self.load_model_from_file(path)
        return self._model

    # -- reconstruction ---------------------------------------------------------------------------------

    def reconstruct(self, parameters: ReconstructInput) -> Iterator[ReconstructOutput]:
        model = self._require_model()
        try:
            yield from _reconstruct(self._host, self._settings, self._reconstructor, parameters,
                                    self.get_progress_goal(), model=model)
        finally:
            self._model = model.cpu()
            _release_gpu_memory()

    # -- training ---------------------------------------------------------------------------------------

    def get_training_data_file_filter(self) -> str:
        return "NumPy Zipped Archive (*.npz)"

    def export_training_data(self, file_path: Path, parameters: ReconstructInput) -> None:
        """Our NPZ layout in our pixel convention, so ``ptychodus-torch train`` reads it exactly."""
        scan = input_to_scan(parameters, with_truth=True)
        save_npz(scan, Path(file_path))

    def train(self, input_path: Path, output_path: Path) -> Iterator[TrainOutput]:
        """Train on ``input_path`` (a batch folder, our NPZ, or ptychodus HDF5); one output per epoch.

        The model is written to the run folder and copied to ``output_path/model.pt`` (the batch layout
        name), and stays loaded for the next reconstruction.
        """
        from ..training.trainer import train

        config = self._settings.training_config(self._model_type.name, Path(input_path), Path(output_path))
        execution = self._settings.execution_config()

        def work(emit: Callable[[Any], None]) -> Any:
            relay = _EpochRelay(emit)
            self._host.manager.register(relay, name="ptychodus-epoch-relay")
            try:
                return train(config, execution, self._host)
            finally:
                self._host.manager.unregister(relay)

        worker: _Worker[Any] = _Worker(work, "ptychodus-torch-train")
        losses: list[LossValue] = []
        val_losses: list[LossValue] = []
        for epoch, metrics in worker:
            losses.append(LossValue(epoch=epoch, value=float(metrics["train_loss"])))
            if "val_loss" in metrics:
                val_losses.append(LossValue(epoch=epoch, value=float(metrics["val_loss"])))
            yield TrainOutput(training_loss=list(losses), validation_loss=list(val_losses), progress=epoch + 1)
        result = worker.result
        if result.model_path is None:
            raise ConfigError(f"training stopped ({result.status}) before the first epoch finished; no model")
        self.load_model_from_file(result.model_path)
        target = Path(output_path) / f"{MODEL_BASENAME}{MODEL_FILE_EXTENSION}"
        if target.resolve() != Path(result.model_path).resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result.model_path, target)
        _log.info("trained %s: %s (copied to %s)", self.name, result.model_path, target)
        yield TrainOutput(training_loss=list(losses), validation_loss=list(val_losses),
                          progress=result.epochs_completed, status=0)


class ModelFreeReconstructor(Reconstructor):
    """A registered reconstructor that needs no model (e.g. ``iterative``). It starts from ptychodus's
    current object (unless that is constant) and probe, so a second run continues the first."""

    def __init__(self, name: str, settings: TorchSettings, host: PluginHost) -> None:
        self._name = name
        self._settings = settings
        self._host = host

    @property
    def name(self) -> str:
        return self._name

    def get_progress_goal(self) -> int:
        """The reconstructor's ``epochs`` setting where it has one (the built-in solver's, or a plugin's)."""
        try:
            options = self._settings.reconstructor_options(self._name)
        except ConfigError:
            options = None
        return int(getattr(options, "epochs", 1) or 1)

    def reconstruct(self, parameters: ReconstructInput) -> Iterator[ReconstructOutput]:
        import numpy as np

        current = np.asarray(parameters.product.object_.get_layers_flattened())
        start = None if np.allclose(current, current.flat[0]) else current.astype(np.complex64)
        yield from _reconstruct(self._host, self._settings, self._name, parameters, self.get_progress_goal(),
                                initial_object=start)
