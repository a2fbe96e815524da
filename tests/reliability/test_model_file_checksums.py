"""Model files and checkpoints carry SHA-256 checksums; a changed bit is a clear error, never a wrong model.

The truncated-file case is covered by ``tests/training/test_trainer.py::test_corrupt_model_file_is_a_clear_error``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from reliability_helpers import flip_tensor_byte_in_place, flip_tensor_byte_rezipped, make_scan

from ptychodus_torch_plugin.atomic import state_dict_sha256
from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.errors import ModelFileError
from ptychodus_torch_plugin.models.model_file import MODEL_FORMAT_VERSION, load_model
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.training.checkpoints import load_checkpoint
from ptychodus_torch_plugin.training.trainer import train

MISMATCH = "checksum mismatch: the file is corrupt or was modified"


@pytest.fixture(scope="module")
def host():
    return build_plugin_host(load_entry_points=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("checksums")
    scan = make_scan(folder, "train")
    config = TrainingConfig(train_data_file=scan, test_data_file=None, output_dir=folder / "out", max_epochs=1,
                            batch_size=8, quiet=True, image_every_n_epochs=0,
                            model=ModelConfig(gridsize=2, channels=(8, 16, 32)))
    result = train(config, ExecutionConfig(accelerator="cpu", logger="none"))
    return result.run_dir


def test_model_file_has_a_manifest_that_matches_its_weights(run_dir, host):
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    assert payload["format_version"] == MODEL_FORMAT_VERSION == 2
    manifest = payload["manifest"]
    assert manifest["algorithm"] == "sha256"
    assert manifest["state_dict_sha256"] == state_dict_sha256(payload["state_dict"])
    load_model(run_dir / "model.pt", host)  # verifies


@pytest.mark.parametrize("flip", [flip_tensor_byte_in_place, flip_tensor_byte_rezipped],
                         ids=["stale-crc", "valid-crc"])
def test_bit_flipped_model_file_is_a_checksum_error(run_dir, host, tmp_path, flip):
    # torch does not check the zip CRCs, so without the manifest both files would load as a different model.
    flipped = tmp_path / "flipped.pt"
    flip(run_dir / "model.pt", flipped)
    assert flipped.read_bytes() != (run_dir / "model.pt").read_bytes()
    with pytest.raises(ModelFileError, match=f"weights {MISMATCH}"):
        load_model(flipped, host)


@pytest.mark.parametrize("kind", ["last", "best"])
def test_bit_flipped_checkpoint_is_a_checksum_error(run_dir, tmp_path, kind):
    source = run_dir / "checkpoints" / f"{kind}.pt"
    assert load_checkpoint(source)["manifest"]["algorithm"] == "sha256"
    flipped = tmp_path / f"{kind}.pt"
    flip_tensor_byte_in_place(source, flipped)
    with pytest.raises(ModelFileError, match=MISMATCH):
        load_checkpoint(flipped)


def test_edited_weights_or_config_are_refused(run_dir, host, tmp_path):
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    weights = dict(payload["state_dict"])
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] += 1e-3
    edited = tmp_path / "weights.pt"
    torch.save({**payload, "state_dict": weights}, edited)
    with pytest.raises(ModelFileError, match=f"weights {MISMATCH}"):
        load_model(edited, host)
    config = {**payload["model_config"], "loss": "mae" if payload["model_config"]["loss"] != "mae" else "poisson"}
    edited = tmp_path / "config.pt"
    torch.save({**payload, "model_config": config}, edited)
    with pytest.raises(ModelFileError, match=f"configuration {MISMATCH}"):
        load_model(edited, host)


def test_format_2_without_manifest_is_refused_format_1_still_loads(run_dir, host, tmp_path):
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    stripped = {k: v for k, v in payload.items() if k != "manifest"}
    torch.save(stripped, tmp_path / "stripped.pt")
    with pytest.raises(ModelFileError, match="missing or unreadable checksum manifest"):
        load_model(tmp_path / "stripped.pt", host)
    torch.save({**stripped, "format_version": 1}, tmp_path / "v1.pt")  # as written by the previous release
    old, _, _ = load_model(tmp_path / "v1.pt", host)
    new, _, _ = load_model(run_dir / "model.pt", host)
    x = torch.rand(2, 4, 32, 32)
    assert torch.equal(old(x), new(x))


def test_state_dict_digest_covers_names_dtypes_shapes_and_bytes():
    base = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(0), "c": torch.tensor(3)}
    digest = state_dict_sha256(base)
    assert digest == state_dict_sha256(dict(reversed(list(base.items()))))  # order-independent
    assert digest == state_dict_sha256({**base, "a": base["a"].t().contiguous().t()})  # layout-independent
    variants = [
        {**base, "a": base["a"].reshape(3, 2)},
        {**base, "a": base["a"].to(torch.int32)},
        {**base, "a": base["a"] + torch.tensor([[0, 0, 0], [0, 0, 1e-6]])},
        {"A" if k == "a" else k: v for k, v in base.items()},
        {**base, "b": torch.zeros(0, dtype=torch.float64)},
    ]
    assert len({digest, *(state_dict_sha256(v) for v in variants)}) == 1 + len(variants)
