"""The ``csv`` backend: files read back exactly as a user or CI job would read them."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from ptychodus_torch_plugin.loggers.base import RUNS_FOLDER, allocate_run_dir
from ptychodus_torch_plugin.loggers.csv_logger import (
    ARTIFACTS_FILE,
    HPARAMS_FILE,
    METRICS_FILE,
    STEP_METRICS_FILE,
    CsvLogger,
    hparams_yaml,
)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows, read the way a CI script would."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def epochs_of(rows: list[dict[str, str]]) -> list[int]:
    return [int(r["epoch"]) for r in rows]


def test_one_dense_row_per_epoch_flushed_while_open(make_settings) -> None:
    logger = CsvLogger(make_settings())
    logger.start()
    path = logger.run_dir / METRICS_FILE
    for epoch in range(3):
        metrics = {"train_loss": 1.0 / (epoch + 1), "val_loss": 2.0 / (epoch + 1), "lr": 1e-3, "time_s": 0.1}
        logger.log_metrics(metrics, epoch=epoch, step=10 * (epoch + 1))
        header, rows = read_csv(path)  # the logger is still open: the row must already be on disk
        assert header == ["epoch", "step", "train_loss", "val_loss", "lr", "time_s"]
        assert epochs_of(rows) == list(range(epoch + 1))
        assert int(rows[-1]["step"]) == 10 * (epoch + 1)
        assert float(rows[-1]["train_loss"]) == metrics["train_loss"]  # full precision, exact
        assert all(rows[-1][c] != "" for c in header)  # dense
    logger.finish("FINISHED")


def test_new_metric_key_widens_header_atomically(make_settings) -> None:
    logger = CsvLogger(make_settings())
    logger.start()
    logger.log_metrics({"train_loss": 0.5}, epoch=0, step=4)
    logger.log_metrics({"train_loss": 0.4, "val_loss": 0.7}, epoch=1, step=8)
    logger.log_metrics({"val_loss": 0.6, "train_loss": 0.3}, epoch=2, step=12)
    header, rows = read_csv(logger.run_dir / METRICS_FILE)
    assert header == ["epoch", "step", "train_loss", "val_loss"]
    assert [r["val_loss"] for r in rows] == ["", "0.7", "0.6"]
    assert [r["train_loss"] for r in rows] == ["0.5", "0.4", "0.3"]
    logger.log_metrics({"train_loss": 0.2}, epoch=3, step=16)  # appending still works after a rewrite
    logger.finish("FINISHED")
    _, rows = read_csv(logger.run_dir / METRICS_FILE)
    assert epochs_of(rows) == [0, 1, 2, 3] and rows[-1]["val_loss"] == ""
    assert sorted(p.name for p in logger.run_dir.iterdir()) == [METRICS_FILE]  # no temp files left


def test_special_values_in_cells(make_settings) -> None:
    logger = CsvLogger(make_settings())
    logger.start()
    logger.log_metrics({"loss": np.float32(0.25), "bad": float("nan"), "big": 1e300}, epoch=0, step=1)
    logger.finish("FINISHED")
    _, rows = read_csv(logger.run_dir / METRICS_FILE)
    assert (
        float(rows[0]["loss"]) == 0.25
        and math.isnan(float(rows[0]["bad"]))
        and float(rows[0]["big"]) == 1e300
    )


HPARAMS = {
    "lr": 1e-5,
    "huge": 1e20,
    "epochs": 30,
    "big_int": 2**70,
    "negative": -3.5,
    "amsgrad": True,
    "scheduler": None,
    "model": "pinn",
    "looks_like_bool": "yes",
    "looks_like_number": "1e3",
    "quoted": 'say "hi" \\ bye',
    "multi\nline": "a\tb\nc",
    "unicode": "Å µm 😀",
    "control": "\x00\x07\x7f\x85\u2028",
    "path": Path("/data/scan 1.h5"),
    "infinite": float("inf"),
}


def test_hparams_yaml_parses_back_to_the_same_values(make_settings) -> None:
    logger = CsvLogger(make_settings())
    logger.start()
    logger.log_hyperparams(HPARAMS)
    logger.finish("FINISHED")
    loaded = yaml.safe_load((logger.run_dir / HPARAMS_FILE).read_text(encoding="utf-8"))
    expected = {k: (str(v) if isinstance(v, Path) else v) for k, v in HPARAMS.items()}
    assert loaded == expected
    assert list(loaded) == list(HPARAMS)  # order kept


def test_hparams_nan_and_empty() -> None:
    assert math.isnan(yaml.safe_load(hparams_yaml({"x": float("nan")}))["x"])
    assert yaml.safe_load(hparams_yaml({})) == {}


_hparam_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=["Cs"])),
)


@hyp_settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), _hparam_values, max_size=6))
def test_yaml_writer_round_trips_any_flat_mapping(params: dict) -> None:
    assert yaml.safe_load(hparams_yaml(params)) == params


def test_hparams_merge_over_calls(make_settings) -> None:
    logger = CsvLogger(make_settings())
    logger.start()
    logger.log_hyperparams({"lr": 0.1, "epochs": 3})
    logger.log_hyperparams({"epochs": 5})
    logger.finish("FINISHED")
    loaded = yaml.safe_load((logger.run_dir / HPARAMS_FILE).read_text(encoding="utf-8"))
    assert loaded == {"lr": 0.1, "epochs": 5}


def test_resume_drops_epochs_from_the_resumed_one_and_keeps_earlier(make_settings) -> None:
    first = make_settings()
    logger = CsvLogger(first)
    logger.start()
    for epoch in range(5):  # killed after epoch 4; the checkpoint is from the end of epoch 2
        logger.log_metrics({"loss": float(epoch)}, epoch=epoch, step=epoch + 1)
    logger.finish("KILLED")  # stopped by SIGTERM; rows are flushed per epoch anyway

    resumed = make_settings(run_dir=first.run_dir, resume=True)
    logger = CsvLogger(resumed)
    logger.start()
    _, rows = read_csv(first.run_dir / METRICS_FILE)
    assert epochs_of(rows) == [0, 1, 2, 3, 4]  # nothing dropped before an epoch is logged
    for epoch in range(3, 6):
        logger.log_metrics({"loss": 10.0 + epoch, "val": 1.0}, epoch=epoch, step=epoch + 1)
    logger.finish("FINISHED")
    header, rows = read_csv(first.run_dir / METRICS_FILE)
    assert header == ["epoch", "step", "loss", "val"]
    assert epochs_of(rows) == [0, 1, 2, 3, 4, 5]
    assert [float(r["loss"]) for r in rows] == [0.0, 1.0, 2.0, 13.0, 14.0, 15.0]
    assert [r["val"] for r in rows] == ["", "", "", "1.0", "1.0", "1.0"]


def test_resume_repairs_a_partial_last_line(make_settings) -> None:
    settings = make_settings()
    (settings.run_dir / METRICS_FILE).write_text(
        "epoch,step,loss\n0,1,0.5\n1,2,0.4\n2,3,0.", encoding="utf-8"
    )
    logger = CsvLogger(make_settings(run_dir=settings.run_dir, resume=True))
    logger.start()
    logger.log_metrics({"loss": 0.3}, epoch=2, step=3)
    logger.finish("FINISHED")
    _, rows = read_csv(settings.run_dir / METRICS_FILE)
    assert epochs_of(rows) == [0, 1, 2] and rows[-1]["loss"] == "0.3"


def test_without_resume_an_existing_file_is_started_afresh(make_settings) -> None:
    settings = make_settings()
    (settings.run_dir / METRICS_FILE).write_text("epoch,step,old\n0,1,9\n", encoding="utf-8")
    logger = CsvLogger(settings)
    logger.start()
    logger.log_metrics({"loss": 0.3}, epoch=0, step=1)
    logger.finish("FINISHED")
    header, rows = read_csv(settings.run_dir / METRICS_FILE)
    assert header == ["epoch", "step", "loss"] and len(rows) == 1


def test_step_rows_only_when_asked(make_settings) -> None:
    logger = CsvLogger(make_settings(per_step_metrics=False))
    logger.start()
    logger.log_step_metrics({"batch_loss": 1.0}, epoch=0, step=1)
    logger.log_metrics({"loss": 1.0}, epoch=0, step=1)
    logger.finish("FINISHED")
    assert not (logger.run_dir / STEP_METRICS_FILE).exists()

    logger = CsvLogger(make_settings(per_step_metrics=True))
    logger.start()
    for epoch in range(2):
        for i in range(3):
            step = 3 * epoch + i + 1
            logger.log_step_metrics({"batch_loss": float(step)}, epoch=epoch, step=step)
            _, rows = read_csv(logger.run_dir / STEP_METRICS_FILE)
            assert int(rows[-1]["step"]) == step  # flushed per row
        logger.log_metrics({"loss": float(epoch)}, epoch=epoch, step=3 * epoch + 3)
    logger.finish("FINISHED")
    header, rows = read_csv(logger.run_dir / STEP_METRICS_FILE)
    assert header == ["epoch", "step", "batch_loss"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 0, 1, 1, 1]
    _, epoch_rows = read_csv(logger.run_dir / METRICS_FILE)
    assert epochs_of(epoch_rows) == [0, 1]  # metrics.csv stays one row per epoch


def test_step_rows_on_resume_restart_at_the_resumed_step(make_settings) -> None:
    first = make_settings(per_step_metrics=True)
    logger = CsvLogger(first)
    logger.start()
    for step in range(1, 7):  # 3 steps per epoch, killed during epoch 1
        logger.log_step_metrics({"batch_loss": 1.0}, epoch=(step - 1) // 3, step=step)
    logger.finish("KILLED")
    logger = CsvLogger(make_settings(run_dir=first.run_dir, per_step_metrics=True, resume=True))
    logger.start()
    for step in range(4, 8):  # resumed from the end of epoch 0 (step 3)
        logger.log_step_metrics({"batch_loss": 2.0}, epoch=(step - 1) // 3, step=step)
    logger.finish("FINISHED")
    _, rows = read_csv(first.run_dir / STEP_METRICS_FILE)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["batch_loss"] for r in rows] == ["1.0"] * 3 + ["2.0"] * 4


def test_images_as_png_and_artifact_list(make_settings, tmp_path: Path) -> None:
    from matplotlib.image import imread

    logger = CsvLogger(make_settings())
    logger.start()
    picture = np.outer(np.linspace(-1, 3, 12), np.ones(7))
    picture[0, 0] = np.nan
    logger.log_image("object/phase", picture, epoch=3, step=30)
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    logger.log_artifact(model)
    logger.finish("FINISHED")
    png = logger.run_dir / "images" / "object_phase_epoch0003.png"
    pixels = imread(png)
    assert pixels.shape[:2] == (12, 7)
    assert pixels[..., 0].min() == 0.0 and pixels[..., 0].max() == 1.0
    assert (logger.run_dir / ARTIFACTS_FILE).read_text().splitlines() == [str(model.resolve())]


def test_versions_are_allocated_in_order_and_never_deleted(output_dir: Path) -> None:
    from ptychodus_torch_plugin.loggers.base import LoggerSettings

    first = allocate_run_dir(output_dir)
    logger = CsvLogger(LoggerSettings(output_dir=output_dir, run_dir=first))
    logger.start()
    logger.log_metrics({"loss": 1.0}, epoch=0, step=1)
    logger.finish("FINISHED")
    before = (first / METRICS_FILE).read_bytes()

    second = allocate_run_dir(output_dir)
    assert (first.name, second.name) == ("version_0", "version_1")
    assert first.parent == second.parent == output_dir / RUNS_FOLDER
    logger = CsvLogger(LoggerSettings(output_dir=output_dir, run_dir=second))
    logger.start()
    logger.log_metrics({"loss": 2.0}, epoch=0, step=1)
    logger.finish("FINISHED")
    assert (first / METRICS_FILE).read_bytes() == before
    assert allocate_run_dir(output_dir).name == "version_2"
    assert sorted(p.name for p in (output_dir / RUNS_FOLDER).iterdir()) == [
        "version_0",
        "version_1",
        "version_2",
    ]


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_finish_twice_is_harmless(make_settings, status: str) -> None:
    logger = CsvLogger(make_settings())
    logger.start()
    logger.finish(status)
    logger.finish(status)


def test_a_failed_rewrite_leaves_a_consistent_file(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from ptychodus_torch_plugin.loggers import csv_logger

    logger = CsvLogger(make_settings())
    logger.start()
    logger.log_metrics({"loss": 1.0}, epoch=0, step=1)
    real_write = csv_logger.atomic_write_text

    def disk_full(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv_logger, "atomic_write_text", disk_full)
    with pytest.raises(OSError):
        logger.log_metrics({"loss": 0.5, "val": 2.0}, epoch=1, step=2)  # needs a wider header
    monkeypatch.setattr(csv_logger, "atomic_write_text", real_write)
    logger.log_metrics({"loss": 0.25, "val": 1.5}, epoch=2, step=3)  # the disk has space again
    logger.finish("FINISHED")
    header, rows = read_csv(logger.run_dir / METRICS_FILE)
    assert header == ["epoch", "step", "loss", "val"]
    assert [(r["epoch"], r["loss"], r["val"]) for r in rows] == [("0", "1.0", ""), ("2", "0.25", "1.5")]
