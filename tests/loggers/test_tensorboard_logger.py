"""The ``tensorboard`` backend, read back with TensorBoard's own event reader."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from ptychodus_torch_plugin.errors import MissingExtraError
from ptychodus_torch_plugin.loggers import tensorboard_logger


def load_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_scalars_image_and_hparams_in_the_version_folder(make_settings) -> None:
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    settings = make_settings(per_step_metrics=True)
    logger = tensorboard_logger.create(settings)
    logger.start()
    logger.log_hyperparams({"lr": 1e-3, "model": "pinn", "amsgrad": True, "scheduler": None})
    for epoch in range(3):
        for i in range(2):
            logger.log_step_metrics({"batch_loss": 0.1 * i}, epoch=epoch, step=2 * epoch + i + 1)
        logger.log_metrics(
            {"train_loss": 1.0 / (epoch + 1), "val_loss": 0.5}, epoch=epoch, step=2 * epoch + 2
        )
    logger.log_image("amplitude", np.arange(20.0).reshape(4, 5) * 7 - 3, epoch=2, step=6)
    logger.finish("FINISHED")

    assert [p for p in settings.run_dir.iterdir() if p.is_dir()] == []  # hparams not in a sub-run
    events = load_events(settings.run_dir)
    train = events.Scalars("train_loss")  # x-axis: optimiser steps, as in PyTorch Lightning
    assert [e.step for e in train] == [2, 4, 6]
    assert [e.value for e in train] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [(e.step, e.value) for e in events.Scalars("epoch")] == [(2, 0), (4, 1), (6, 2)]
    assert [e.step for e in events.Scalars("step/batch_loss")] == [1, 2, 3, 4, 5, 6]

    (image,) = events.Images("amplitude")
    assert (image.step, image.width, image.height) == (6, 5, 4)

    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    start = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_START_INFO_TAG])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(1e-3)
    assert hparams["model"].string_value == "pinn"
    assert hparams["scheduler"].string_value == "None"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.EXPERIMENT_TAG]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"train_loss", "val_loss"}


def test_no_step_scalars_unless_asked(make_settings) -> None:
    settings = make_settings()
    logger = tensorboard_logger.create(settings)
    logger.start()
    logger.log_step_metrics({"batch_loss": 1.0}, epoch=0, step=1)
    logger.log_metrics({"train_loss": 1.0}, epoch=0, step=1)
    logger.finish("FINISHED")
    assert sorted(load_events(settings.run_dir).Tags()["scalars"]) == ["epoch", "train_loss"]


def test_missing_tensorboard_names_the_extra(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingExtraError) as info:
        tensorboard_logger.create(make_settings())
    assert info.value.extra == "tensorboard"
    assert "tensorboard" in str(info.value)


@pytest.mark.parametrize("per_step", [False, True])
def test_resumed_run_shows_each_step_once(make_settings, per_step: bool) -> None:
    """Killed after epoch 4, resumed from the checkpoint at the end of epoch 2 (2 steps per epoch)."""

    def run(logger, epochs, offset: float) -> None:
        logger.start()
        for epoch in epochs:
            for step in (2 * epoch + 1, 2 * epoch + 2):
                logger.log_step_metrics({"batch_loss": offset + step}, epoch=epoch, step=step)
            logger.log_metrics({"train_loss": offset + epoch}, epoch=epoch, step=2 * epoch + 2)

    first = make_settings(per_step_metrics=per_step)
    run(tensorboard_logger.create(first), range(5), 0.0)  # no finish(): the process died
    resumed = tensorboard_logger.create(
        make_settings(run_dir=first.run_dir, per_step_metrics=per_step, resume=True)
    )
    run(resumed, range(3, 6), 100.0)
    resumed.finish("FINISHED")

    events = load_events(first.run_dir)
    train = [(e.step, e.value) for e in events.Scalars("train_loss")]
    assert train == [(2, 0), (4, 1), (6, 2), (8, 103), (10, 104), (12, 105)]
    if per_step:
        steps = [(e.step, e.value) for e in events.Scalars("step/batch_loss")]
        assert steps == [(s, s) for s in range(1, 7)] + [(s, 100 + s) for s in range(7, 13)]
