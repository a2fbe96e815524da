"""The ``mlflow`` backend, read back with ``MlflowClient``. MLflow is slow to import: few tests here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ptychodus_torch_plugin.errors import MissingExtraError
from ptychodus_torch_plugin.loggers import mlflow_logger


@pytest.fixture
def clean_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No user tracking URI, and no permission for file stores: the default must not need one."""
    for name in (mlflow_logger.TRACKING_URI_ENV, "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_run_in_local_sqlite_store_under_output_dir(make_settings, clean_mlflow_env, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    settings = make_settings(run_name="run-a", experiment_name="exp-a")
    logger = mlflow_logger.create(settings)
    logger.start()
    long_value = "x" * 10_000
    logger.log_hyperparams({"lr": 1e-3, "model": "pinn", "scheduler": None, "notes": long_value, "a:b": 1})
    for epoch in range(3):
        logger.log_metrics({"train_loss": 1.0 / (epoch + 1)}, epoch=epoch, step=10 * epoch)
    logger.log_step_metrics({"batch_loss": 1.0}, epoch=0, step=1)  # per_step_metrics is off: dropped
    logger.log_image("object/amplitude", np.random.default_rng(0).random((8, 6)), epoch=2, step=20)
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    logger.log_artifact(model)
    logger.finish("FINISHED")

    store = settings.output_dir / "mlflow.db"
    assert store.is_file()
    assert logger.tracking_uri == "sqlite:///" + str(store.resolve())
    assert "MLFLOW_ALLOW_FILE_STORE" not in mlflow_logger.os.environ  # the process environment is left alone
    assert (settings.run_dir / "mlflow_run_id").read_text().strip() == logger.run_id
    assert (settings.output_dir / "mlartifacts").is_dir()  # artifacts beside the store, not under the cwd

    client = MlflowClient(tracking_uri=logger.tracking_uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "run-a"
    assert client.get_experiment(run.info.experiment_id).name == "exp-a"
    params = run.data.params
    assert params["lr"] == "0.001" and params["model"] == "pinn" and params["scheduler"] == "None"
    assert params["a_b"] == "1"
    assert len(params["notes"]) == mlflow_logger.MAX_PARAM_VALUE_LENGTH
    assert params["notes"].endswith(mlflow_logger.TRUNCATION_MARK)
    history = client.get_metric_history(logger.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert "batch_loss" not in run.data.metrics and "step/batch_loss" not in run.data.metrics
    top = {a.path for a in client.list_artifacts(logger.run_id)}
    assert top == {"model.pt", "images"}
    images = [a.path for a in client.list_artifacts(logger.run_id, "images")]
    assert images == ["images/object_amplitude_epoch0002.png"]
    local = Path(client.download_artifacts(logger.run_id, images[0], str(tmp_path / "dl")))
    assert local.read_bytes().startswith(b"\x89PNG")


def test_tracking_uri_is_honoured_and_failed_status(make_settings, clean_mlflow_env, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    elsewhere = (tmp_path / "shared-store").as_uri()
    clean_mlflow_env.setenv(mlflow_logger.TRACKING_URI_ENV, elsewhere)
    clean_mlflow_env.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the user's choice for a file store
    settings = make_settings()
    logger = mlflow_logger.create(settings)
    logger.start()
    logger.log_metrics({"train_loss": 2.0}, epoch=0, step=1)
    logger.finish("FAILED")

    assert logger.tracking_uri == elsewhere
    assert not (settings.output_dir / "mlflow.db").exists() and not (settings.output_dir / "mlartifacts").exists()
    run = MlflowClient(tracking_uri=elsewhere).get_run(logger.run_id)
    assert run.info.status == "FAILED"
    assert run.info.run_name == settings.run_name


def test_missing_mlflow_names_the_extra(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError) as info:
        mlflow_logger.create(make_settings())
    assert info.value.extra == "mlflow" and "mlflow" in str(info.value)


def test_missing_database_packages_name_the_extra_for_the_default_store(make_settings, clean_mlflow_env) -> None:
    """mlflow-skinny without sqlalchemy: refused at start-up with the extra, not deep inside MLflow's store;
    a server URI needs no database packages here."""
    clean_mlflow_env.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(MissingExtraError) as info:
        mlflow_logger.create(make_settings())
    assert info.value.extra == "mlflow" and "sqlalchemy" in str(info.value)
    clean_mlflow_env.setenv(mlflow_logger.TRACKING_URI_ENV, "http://127.0.0.1:5000")
    assert isinstance(mlflow_logger.create(make_settings()), mlflow_logger.MlflowLogger)


def test_key_and_value_helpers() -> None:
    assert mlflow_logger.mlflow_key("train/loss") == "train/loss"
    assert mlflow_logger.mlflow_key("/a//b/../c:d/") == "a/b/_/c_d"
    assert mlflow_logger.mlflow_key("") == "_"
    assert len(mlflow_logger.mlflow_key("k" * 400)) == mlflow_logger.MAX_KEY_LENGTH
    assert mlflow_logger.param_value("short") == "short"
    assert len(mlflow_logger.param_value("é" * 7000)) == mlflow_logger.MAX_PARAM_VALUE_LENGTH
