"""One ptychodus ``TrainableReconstructor`` per registered model type, running in ptychodus's process.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ptychodus.api.product import LossValue
from ptychodus.api.reconstruct import (
    ReconstructInput,
    ReconstructOutput,
    TrainableReconstructor,
    TrainOutput,
)

from .. import hookimpl
from ..data.npz import save_npz
from ..errors import ConfigError
from ..models.base import ModelType
from ..plugins import PluginHost, build_plugin_host
from .convert import input_to_scan, reconstruction_to_product
from .settings import TorchSettings

#: Stem ptychodus's batch layout uses for the model file (``StandardFileLayout.MODEL_BASENAME``).
MODEL_BASENAME = "model"
MODEL_FILE_EXTENSION = ".pt"

_log = logging.getLogger(__name__)


class _EpochRelay:
    """Trainer plugin that forwards each finished epoch to the thread iterating :meth:`train`."""

    def __init__(self, events: queue.Queue[tuple[str, Any]]) -> None:
        self._events = events

    @hookimpl
    def ptychodus_torch_epoch_end(self, run: Any, epoch: int, metrics: dict[str, float]) -> None:
        self._events.put(("epoch", (epoch, dict(metrics))))


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class TorchReconstructor(TrainableReconstructor):
    """Reconstruct with a loaded model file; train a new one from ptychodus data."""

    def __init__(self, model_type: ModelType, settings: TorchSettings) -> None:
        self._model_type = model_type
        self._settings = settings
        self._model: Any = None
        self._model_config: Any = None
        self._model_info: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._model_type.name

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

        model, config, info = load_model(Path(file_path), build_plugin_host())
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
        from ..inference import reconstruct_scan

        model = self._require_model()
        scan = input_to_scan(parameters)
        host = build_plugin_host()
        execution = self._settings.execution_config()
        device = host.resolve_device(execution.accelerator)
        try:
            recon = reconstruct_scan(model, scan, batch_size=self._settings.inference_batch_size.get_value(),
                                     device=device, performance=execution.performance)
        finally:
            self._model = model.cpu()
            _release_gpu_memory()
        product = reconstruction_to_product(recon, parameters.product)
        yield ReconstructOutput(product=product, progress=self.get_progress_goal(), status=0)

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
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        host = build_plugin_host(extra_plugins=[("ptychodus-epoch-relay", _EpochRelay(events))])

        def work() -> None:
            try:
                events.put(("done", train(config, execution, host)))
            except BaseException as error:  # handed to the iterating thread and re-raised there
                events.put(("error", error))

        worker = threading.Thread(target=work, name="ptychodus-torch-train", daemon=True)
        worker.start()
        losses: list[LossValue] = []
        val_losses: list[LossValue] = []
        while True:
            kind, payload = events.get()
            if kind == "epoch":
                epoch, metrics = payload
                losses.append(LossValue(epoch=epoch, value=float(metrics["train_loss"])))
                if "val_loss" in metrics:
                    val_losses.append(LossValue(epoch=epoch, value=float(metrics["val_loss"])))
                yield TrainOutput(training_loss=list(losses), validation_loss=list(val_losses), progress=epoch + 1)
                continue
            worker.join()
            _release_gpu_memory()
            if kind == "error":
                raise payload
            result = payload
            break
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
