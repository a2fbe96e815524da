"""The training loop: plain PyTorch, plugin events, crash-safe checkpoints and logs.

Per epoch: train over shuffled group batches, validate, step the schedule, log one metrics row, save the
``last`` checkpoint (and ``best`` when validation improved), fire ``ptychodus_torch_epoch_end``. The loss
is accumulated on the device and read back once per epoch, so the step itself never waits for the host.

Under ``torchrun`` (see :mod:`..distributed`) every rank runs this loop on its share of each global batch
with the model wrapped in DistributedDataParallel; losses are summed over ranks once per epoch, and rank 0
alone chooses the run folder, logs, checkpoints, fires plugin events and writes the results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import ExecutionConfig, TrainingConfig, run_record
from ..data.load import load_scan
from ..data.scan import ScanData
from ..distributed import SINGLE_PROCESS, DistributedContext, StopConsensus, distributed_session
from ..errors import ConfigError, PtychodusTorchError
from ..inference import reconstruct_scan
from ..loggers.base import LoggerSettings, MetricsLogger, RunStatus
from ..loggers.guard import GuardedLogger
from ..loggers.null_logger import NullLogger
from ..models.model_file import plain
from ..performance import as_input, autocast, resolve
from ..physics.canvas import group_canvas_size
from ..plugin_types import Reconstruction, RunContext
from ..plugins import PluginHost, build_plugin_host
from .checkpoints import checkpoint_path, load_checkpoint, save_checkpoint
from .data import (
    PROBE_TOLERANCE,
    GroupedScan,
    Share,
    data_intensity_scale,
    epoch_batches,
    group_scan,
    group_scans,
    load_batches,
    local_shard_batches,
    probe_difference,
    shard_batches,
)
from .determinism import deterministic_algorithms, restore_rng_state, rng_state, seed_everything
from .report import final_report, save_best_model
from .run_folder import ResumeWarning, agree_on_run_dir, check_resumable, write_run_config  # noqa: F401
from .schedules import build_scheduler, current_lr, step_scheduler
from .step import TrainStep
from .stopping import StopRequest

_log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    status: RunStatus
    run_dir: Path
    model_path: Path | None
    epochs_completed: int
    metrics: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class _Progress:
    """Mutable loop state; exactly what a checkpoint must restore."""

    epoch: int = 0  # finished epochs
    step: int = 0
    best_loss: float = float("inf")
    epochs_without_improvement: int = 0
    elapsed_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _mean_loss(step: TrainStep, data: GroupedScan, batch_size: int, distributed: DistributedContext) -> float:
    """Mean loss over ``data``; under DDP each rank takes a share and the sums are added over ranks."""
    model = step.model
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=data.amplitudes.device)
    batches = epoch_batches(data, batch_size, shuffle=False, seed=0, epoch=0)
    if distributed.enabled and data.rank_groups is None:  # every rank holds all groups: each takes a part
        batches = [b.tensor_split(distributed.world_size)[distributed.rank] for b in batches]
        batches = [b for b in batches if len(b)]
    with torch.no_grad():
        for batch in load_batches(data, batches):
            with autocast(step.device, step.options):
                patches = model(as_input(batch["amplitudes"], step.options))
            total += model.loss_from_patches(patches, batch).double() * batch["amplitudes"].shape[0]
    return float(distributed.sum(total)) / data.global_groups


class _FailedLogger(NullLogger):
    """Stands in for a backend whose ``create`` raised: ``start`` re-raises that error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def start(self) -> None:
        raise self.error


class Trainer:
    """One training run. Build it, then call :meth:`run`; see :func:`train`."""

    def __init__(self, config: TrainingConfig, execution: ExecutionConfig, host: PluginHost | None = None,
                 distributed: DistributedContext = SINGLE_PROCESS) -> None:
        config.validate()
        self.config = config
        self.execution = execution
        self.host = host or build_plugin_host()
        self.distributed = distributed
        self.device = distributed.device_for(self.host.resolve_device(execution.accelerator))
        self.performance = resolve(execution.performance, self.device, "training")
        self.quiet = config.quiet or not distributed.is_main
        self.backend = self.host.logger_backend(execution.logger)
        self.model_type = self.host.model_type(config.model.model_type)
        seed_everything(config.seed)
        # Under torchrun HDF5 patterns stay in their files and each rank reads its share (training/data.py).
        stream = True if distributed.enabled else None
        self.train_scans = [load_scan(path, stream=stream) for path in config.train_data_files]
        self.train_scan = self.train_scans[0]
        self.test_scan = load_scan(config.test_data_file, stream=stream) if config.test_data_file else None
        if config.model.patch_size is None:
            config = replace(config, model=replace(config.model, patch_size=self.train_scan.patch_size))
            config.validate()
            self.config = config
        several = len(self.train_scans) > 1
        for path, scan in zip(config.train_data_files, self.train_scans):
            self._check_data(scan, f"training ({path})" if several else "training")
        self._check_same_probe()
        if self.test_scan is not None:
            self._check_data(self.test_scan, "test")
        with_truth = self.model_type.needs_ground_truth
        drawn = config.model.grouping  # stored in the model file: inference groups the same way
        grouping = dict(seed=drawn.seed, k_neighbours=drawn.k_neighbours, selection=drawn.selection,
                        distributed=distributed)
        # Every scan (training and validation) is normalised by its own intensity scale, as inference does;
        # the first training scan's is the model's reference.
        scale = data_intensity_scale(self.train_scan.amplitudes, distributed)
        self.train_data = group_scans(self.train_scans, config.model.gridsize, n_groups=config.n_images,
                                      with_truth=with_truth, reference_scale=scale, **grouping).to(self.device)
        self.val_data = None
        if self.test_scan is not None:
            self.val_data = group_scan(self.test_scan, config.model.gridsize,
                                       with_truth=with_truth and self.test_scan.object_truth is not None,
                                       reference_scale=scale, **grouping).to(self.device)
        offsets = [self.train_data.offsets] + ([self.val_data.offsets] if self.val_data is not None else [])
        canvas = max(group_canvas_size(o, config.model.patch_size) for o in offsets)
        self.model = self.model_type.create(config.model, torch.from_numpy(self.train_scan.probe), scale,
                                            canvas).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.progress = _Progress()
        example = self.train_data.batch(torch.arange(min(config.batch_size, self.train_data.n_groups),
                                                     device=self.train_data.groups.device))
        self.step = TrainStep(self.model, self.optimizer, self.device, self.performance, distributed, example)

    def _check_data(self, scan: ScanData, what: str) -> None:
        if scan.patch_size != self.config.model.patch_size:
            hint = ("; every training scan must have the same N" if what.startswith("training (")
                    else f"; pass --N {scan.patch_size} or leave --N unset")
            raise ConfigError(
                f"the {what} data has {scan.patch_size}x{scan.patch_size} patterns but the model is set up for "
                f"N={self.config.model.patch_size}{hint}"
            )
        if self.model_type.needs_ground_truth and what.startswith("training") and scan.object_truth is None:
            raise ConfigError(f"model type '{self.model_type.name}' needs the true object ('objectGuess') "
                              "in the training data")

    def _check_same_probe(self) -> None:
        """The model holds one probe: every training scan must have been measured with the same one (up to
        intensity and a global phase, which the normalisation removes)."""
        files = self.config.train_data_files
        for path, scan in zip(files[1:], self.train_scans[1:]):
            difference = probe_difference(self.train_scan.probe, scan.probe)
            if not difference <= PROBE_TOLERANCE:
                raise ConfigError(
                    f"the probe of training scan {path} differs from that of {files[0]} (relative difference "
                    f"{difference:.3g} > {PROBE_TOLERANCE:g} after normalising intensity and global phase); "
                    "the model holds one probe, so train on scans measured with the same probe")

    # -- run folder, resume -------------------------------------------------------------------------------

    def _prepare_run_dir(self) -> Path:
        """The run folder every rank agrees on (:mod:`.run_folder`); with ``--resume`` every rank restores
        the checkpoint."""
        run_dir = agree_on_run_dir(self.distributed, Path(self.config.output_dir), self.config.resume)
        if self.config.resume:
            self._restore(load_checkpoint(checkpoint_path(run_dir, "last")))
        return run_dir

    @property
    def _events(self) -> PluginHost | None:
        """Where trainer events go: the plugin host on the main rank, nowhere on the others."""
        return self.host if self.distributed.is_main else None

    def _restore(self, state: dict[str, Any]) -> None:
        check_resumable(state, self.config.model, self.config.learning_rate)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        progress = state["progress"]
        self.progress = _Progress(
            epoch=int(progress["epoch"]), step=int(progress["step"]), best_loss=float(progress["best_loss"]),
            epochs_without_improvement=int(progress["epochs_without_improvement"]),
            elapsed_s=float(progress["elapsed_s"]), history=[dict(h) for h in progress["history"]],
        )
        restore_rng_state(state["rng"])

    def _model_config_record(self) -> dict[str, Any]:
        return plain(self.config.model.__dict__)

    def _checkpoint_state(self) -> dict[str, Any]:
        p = self.progress
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "model_config": self._model_config_record(),
            "progress": {"epoch": p.epoch, "step": p.step, "best_loss": p.best_loss,
                         "epochs_without_improvement": p.epochs_without_improvement,
                         "elapsed_s": p.elapsed_s, "history": p.history},
            "rng": rng_state(),
        }

    # -- the loop -----------------------------------------------------------------------------------------

    def _batches(self, epoch: int) -> tuple[Iterator[dict[str, torch.Tensor]], list[Share]]:
        """This rank's batches for ``epoch`` and, per batch, its share (global batch size, loss weight)."""
        workers = self.config.num_workers if self.device.type == "cpu" else 0
        if self.train_data.rank_groups is not None:  # each rank holds only its share of the groups
            shares = local_shard_batches(self.train_data.rank_groups, self.config.batch_size, seed=self.config.seed,
                                         epoch=epoch, rank=self.distributed.rank)
            return load_batches(self.train_data, [share.indices for share in shares], workers), shares
        batches = epoch_batches(self.train_data, self.config.batch_size, shuffle=True, seed=self.config.seed,
                                epoch=epoch)
        shares = shard_batches(batches, self.distributed.rank, self.distributed.world_size)
        return load_batches(self.train_data, [share.indices for share in shares], workers), shares

    def _train_epoch(self, epoch: int, stop: StopRequest, consensus: StopConsensus) -> tuple[float, int] | None:
        """Mean training loss and patterns seen (over all ranks), or None when a stop request abandoned
        the epoch."""
        self.model.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        channels = self.train_data.n_channels
        bar = tqdm(total=self.train_data.global_groups * channels, disable=self.quiet, leave=False,
                   desc=f"epoch {epoch + 1}/{self.config.max_epochs}", unit="pattern", unit_scale=True)
        batches, shares = self._batches(epoch)
        for batch, (_, weight, global_size) in zip(batches, shares):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            loss = self.step(batch, weight)
            # sum over ranks of (local mean x local size) = global batch mean x global size
            total += loss.double() * batch["amplitudes"].shape[0]
            seen += global_size
            bar.update(global_size * channels)
            self.progress.step += 1
            if self.execution.per_step_metrics:
                step_loss = self.distributed.sum(loss.double() * batch["amplitudes"].shape[0]) / global_size
                self.logger.log_step_metrics({"train_loss_step": float(step_loss)}, epoch=epoch,
                                             step=self.progress.step)
            if consensus.step(stop.requested):
                bar.close()
                consensus.settle(True)
                return None
        bar.close()
        return float(self.distributed.sum(total)) / max(seen, 1), seen * channels

    def run(self) -> TrainResult:
        run_dir = self._prepare_run_dir()
        self.run_dir = run_dir
        settings = LoggerSettings(output_dir=Path(self.config.output_dir), run_dir=run_dir,
                                  run_name=self.execution.run_name, experiment_name=self.execution.experiment_name,
                                  per_step_metrics=self.execution.per_step_metrics, resume=self.config.resume)
        logger = self._create_logger(settings) if self.distributed.is_main else NullLogger()
        self.logger = GuardedLogger(logger, name=self.backend.name)
        self.logger.start()  # PtychodusTorchError propagates; any other start failure warns once, logs nothing
        hyperparams = {**run_record(self.config, self.execution), "device": str(self.device),
                       "logger": self.backend.name, "intensity_scale": float(self.model.scale.detach()),
                       "performance": self.performance.describe(), "world_size": self.distributed.world_size}
        if not self.config.resume and self.distributed.is_main:
            write_run_config(run_dir, hyperparams)
        self.logger.log_hyperparams(hyperparams)
        context = RunContext(output_dir=Path(self.config.output_dir), run_dir=run_dir, device=str(self.device),
                             hyperparams=hyperparams, epoch=self.progress.epoch)
        if events := self._events:
            events.train_start(context)
        try:
            with deterministic_algorithms(self.device, self.config.deterministic):
                status = self._loop(context)
                result = self._finish(context, status)
        except BaseException as error:
            if events := self._events:
                events.train_failed(context, error)
            self.logger.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
            raise
        self.logger.finish(status)
        if events := self._events:
            events.train_end(context, status, result.metrics)
        return result

    def _create_logger(self, settings: LoggerSettings) -> MetricsLogger:
        """The backend's logger. Deliberate errors (a missing extra, a bad option) stop the run here; a
        backend whose ``create`` crashes otherwise is replaced by a logger that only raises in ``start``,
        so :class:`GuardedLogger` reports it once and training goes on (see :mod:`..loggers.guard`)."""
        try:
            return self.backend.create(settings)
        except PtychodusTorchError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken third-party backend must not stop training
            return _FailedLogger(exc)

    def _loop(self, context: RunContext) -> RunStatus:
        p = self.progress
        consensus = StopConsensus(self.distributed)
        with StopRequest() as stop:
            while p.epoch < self.config.max_epochs:
                epoch = p.epoch
                started = time.perf_counter()
                outcome = self._train_epoch(epoch, stop, consensus)
                if outcome is None:
                    _log.warning("stop requested (%s): epoch %d abandoned; the last checkpoint holds epoch %d",
                                 stop.signal_name, epoch, epoch - 1)
                    return "KILLED"
                metrics, improved = self._close_epoch(epoch, *outcome, started)
                self._end_of_epoch(context, epoch, metrics, improved)
                if self._should_stop_early():
                    break
                if consensus.settle(stop.requested):
                    return "KILLED"
        return "FINISHED"

    def _close_epoch(self, epoch: int, train_loss: float, patterns: int, started: float) -> tuple[dict[str, float], bool]:
        """Validate, step the scheduler, advance the progress record; the epoch's metrics and whether the
        monitored loss (validation, else training) improved."""
        p = self.progress
        val_loss = (_mean_loss(self.step, self.val_data, self.config.batch_size, self.distributed)
                    if self.val_data else None)
        monitored = val_loss if val_loss is not None else train_loss
        lr = current_lr(self.optimizer)
        step_scheduler(self.scheduler, monitored)
        seconds = time.perf_counter() - started
        p.elapsed_s += seconds
        p.epoch = epoch + 1
        metrics = {"train_loss": train_loss, "lr": lr, "epoch_seconds": seconds,
                   "elapsed_seconds": p.elapsed_s, "patterns_per_second": patterns / max(seconds, 1e-9)}
        if val_loss is not None:
            metrics["val_loss"] = val_loss
        improved = monitored < p.best_loss
        if improved:
            p.best_loss, p.epochs_without_improvement = monitored, 0
        else:
            p.epochs_without_improvement += 1
        p.history.append({"epoch": float(epoch), **metrics})
        return metrics, improved

    def _end_of_epoch(self, context: RunContext, epoch: int, metrics: dict[str, float], improved: bool) -> None:
        """Everything a finished epoch leaves behind: its metrics row, checkpoints, the plugins' event,
        pictures every few epochs and the progress line."""
        p = self.progress
        self.logger.log_metrics(metrics, epoch=epoch, step=p.step)
        self._save_checkpoints(context, improved)
        context.epoch = p.epoch
        if events := self._events:
            events.epoch_end(context, epoch, metrics)
        every = self.config.image_every_n_epochs
        if every and p.epoch % every == 0 and self.distributed.is_main:
            self._log_pictures(epoch)
        if not self.quiet:
            shown = f"val_loss {metrics['val_loss']:.5g} " if "val_loss" in metrics else ""
            tqdm.write(f"epoch {epoch + 1}/{self.config.max_epochs}: train_loss {metrics['train_loss']:.5g} "
                       f"{shown}lr {metrics['lr']:.3g} ({metrics['patterns_per_second']:.0f} patterns/s)")

    def _should_stop_early(self) -> bool:
        patience = self.config.early_stopping_patience
        if patience is not None and self.progress.epochs_without_improvement >= patience:
            _log.info("early stopping after %d epochs without improvement", self.progress.epochs_without_improvement)
            return True
        return False

    def _save_checkpoints(self, context: RunContext, improved: bool) -> None:
        if not self.distributed.is_main:
            return
        state = self._checkpoint_state()
        for kind in ("last", "best") if improved else ("last",):
            path = save_checkpoint(self.run_dir, kind, state)
            self.host.checkpoint_saved(context, path, kind)  # only the main rank gets here

    def _evaluation_scan(self) -> ScanData:
        return self.test_scan if self.test_scan is not None else self.train_scan

    def _reconstruct(self) -> Reconstruction:
        # One pass over a validation-sized scan: compiling or graph-capturing it would cost more than it saves.
        performance = replace(self.execution.performance, compile=False, cuda_graphs=False)
        return reconstruct_scan(self.model, self._evaluation_scan(), batch_size=max(64, self.config.batch_size),
                                device=self.device, performance=performance)

    def _log_pictures(self, epoch: int) -> None:
        recon = self._reconstruct()
        self.logger.log_image("amplitude", np.abs(recon.object), epoch=epoch, step=self.progress.step)
        self.logger.log_image("phase", np.angle(recon.object), epoch=epoch, step=self.progress.step)

    def _finish(self, context: RunContext, status: RunStatus) -> TrainResult:
        """The model file (best weights) and, unless stopped, the final reconstruction of the evaluation
        scan with its scores, pictures and loss curve."""
        p = self.progress
        if p.epoch == 0:
            return TrainResult(status, self.run_dir, None, 0)
        metrics = {k: v for k, v in p.history[-1].items() if k != "epoch"}
        if not self.distributed.is_main:  # rank 0 writes the model and the results
            return TrainResult(status, self.run_dir, None, p.epoch, metrics, None, p.history)
        model_path = self._save_model(context, status)
        if status == "KILLED":  # stop promptly: the model is saved, the final pictures can wait
            return TrainResult(status, self.run_dir, model_path, p.epoch, metrics, None, p.history)
        report = final_report(self.run_dir, self._reconstruct(), self._evaluation_scan(), p.history, p.epoch)
        if report.quality is not None:
            # Re-log the last epoch's row with the quality columns added: one row per epoch stays true.
            final = {**metrics, **{f"final_{k}": v for k, v in report.quality.items()}}
            self.logger.log_metrics(final, epoch=p.epoch - 1, step=p.step)
        for path in report.files:
            self.logger.log_artifact(path)
        return TrainResult(status, self.run_dir, model_path, p.epoch, metrics, report.quality, p.history)

    def _save_model(self, context: RunContext, status: RunStatus) -> Path:
        """The model file, with the best weights rather than merely the last ones."""
        p = self.progress
        info = {"epochs": p.epoch, "best_loss": p.best_loss, "training": self.config.flat(), "status": status}
        model_path = save_best_model(self.model, self.config.model, self.run_dir, info)
        self.host.checkpoint_saved(context, model_path, "model")  # only the main rank gets here
        self.logger.log_artifact(model_path)
        return model_path


def train(config: TrainingConfig, execution: ExecutionConfig | None = None,
          host: PluginHost | None = None) -> TrainResult:
    """Train a model as configured; the programmatic twin of ``ptychodus-torch train``.

    Under ``torchrun`` this joins the job's process group for the run (see :mod:`..distributed`)."""
    execution = execution or ExecutionConfig()
    host = host or build_plugin_host()
    with distributed_session(host.resolve_device(execution.accelerator)) as distributed:
        return Trainer(config, execution, host, distributed).run()
