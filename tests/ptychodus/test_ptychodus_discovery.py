"""Discovery: our libraries appear in a real ptychodus 1.7 through the entry-point bridge, by the
launcher's in-process install and by the module shipped into ``ptychodus.plugins``; broken libraries in
the entry-point group are skipped without stopping ptychodus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ptychodus", reason="ptychodus is not installed (pip install 'ptychodus-torch-plugin[ptychodus]')")

from ptychodus_helpers import ROOT, subprocess_env  # noqa: E402

from ptychodus_torch_plugin.ptychodus import ENTRY_POINT_GROUP, LIBRARY_NAME  # noqa: E402
from ptychodus_torch_plugin.ptychodus.bridge import install, is_installed  # noqa: E402


def _available(settings_file: Path | None = None) -> list[str]:
    from ptychodus.model import ModelCore

    with ModelCore(settings_file) as model:
        return list(model.workflow_api.available_reconstructors())


def test_our_entry_point_is_registered():
    from importlib import metadata

    names = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert names.get(LIBRARY_NAME) == "ptychodus_torch_plugin.ptychodus.library:TorchReconstructorLibrary"


def test_bridge_lists_our_algorithms_in_model_core():
    assert install() and install()  # idempotent
    assert is_installed()
    available = _available()
    assert "ptychodus-torch_pinn" in available
    assert "ptychodus-torch_supervised" in available
    assert available.count("ptychodus-torch_pinn") == 1


def test_algorithm_selected_from_settings_file(batch_dir):
    from ptychodus.model import ModelCore

    install()
    with ModelCore(batch_dir / "settings.ini") as model:
        api = model.processing_core.processing_api
        assert api.is_reconstructor_trainable()
        assert api.get_model_file_extension() == ".pt"
        assert model.settings_registry["Processing"].parameters()["Algorithm"].get_value() == "ptychodus-torch_pinn"
        assert model.settings_registry["PtychodusTorch"].parameters()["max_epochs"].get_value() == 1


def test_broken_libraries_are_skipped(broken_site, monkeypatch, caplog):
    monkeypatch.syspath_prepend(str(broken_site))
    install()
    with caplog.at_level("ERROR", logger="ptychodus_torch_plugin.ptychodus.bridge"):
        available = _available()
    assert "ptychodus-torch_pinn" in available
    assert not any(key.startswith(("bad", "second", "aaa", "bbb")) for key in available)
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("aaa-missing", "bbb-raising", "ccc-underscore", "zzz-second"):
        assert f"'{name}'" in skipped


def test_shipped_plugin_module_installs_the_bridge_in_a_plain_ptychodus(tmp_path):
    """A regular install puts ``ptychodus_torch_bridge.py`` into ptychodus's plugin folder; emulate that
    by adding our source folder to ``ptychodus.plugins.__path__`` in a fresh interpreter that never
    calls the launcher, then build ptychodus's ``ModelCore`` as a plain ``ptychodus`` launch does."""
    line, _ = _algorithms_in_a_fresh_ptychodus(
        tmp_path, "import ptychodus.plugins\n"
                  f"ptychodus.plugins.__path__.append({str(ROOT / 'ptychodus_bridge_module')!r})\n")
    assert "ptychodus-torch_pinn" in line and "ptychodus-torch_supervised" in line


def _algorithms_in_a_fresh_ptychodus(tmp_path: Path, prelude: str) -> tuple[str, str]:
    """Run ``prelude`` in a new interpreter, then build ptychodus's ModelCore as a plain ``ptychodus``
    launch does; its algorithm list (one line) and the child's stderr."""
    script = tmp_path / "fresh_ptychodus.py"
    script.write_text(prelude + "from ptychodus.model import ModelCore\n"
                                "if __name__ == '__main__':\n"
                                "    with ModelCore(None) as model:\n"
                                "        print('ALGORITHMS', sorted(model.workflow_api.available_reconstructors()))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(text for text in done.stdout.splitlines() if text.startswith("ALGORITHMS")), done.stderr


def test_shipped_plugin_module_never_raises(monkeypatch):
    sys.path.insert(0, str(ROOT / "ptychodus_bridge_module"))
    try:
        import ptychodus_torch_bridge
    finally:
        sys.path.remove(str(ROOT / "ptychodus_bridge_module"))
    ptychodus_torch_bridge.register_plugins(object())
    assert is_installed()
    monkeypatch.setitem(sys.modules, "ptychodus_torch_plugin.ptychodus.bridge", None)  # import fails
    ptychodus_torch_bridge.register_plugins(object())


def test_wheel_ships_the_bridge_module_into_ptychodus_plugins_only(tmp_path):
    """A regular install must put exactly one file under ``ptychodus/`` (never an ``__init__.py`` of
    ptychodus's) and declare our entry point. Built from a copy, so the source tree gets no build/."""
    import shutil
    import zipfile

    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("ptychodus_torch_plugin", "ptychodus_bridge_module"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("*.whl")))
    names = wheel.namelist()
    assert [n for n in names if n.startswith("ptychodus/")] == ["ptychodus/plugins/ptychodus_torch_bridge.py"]
    entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[ptychodus.reconstructor_libraries]" in entry_points
    assert "ptychodus-torch = ptychodus_torch_plugin.ptychodus.library:TorchReconstructorLibrary" in entry_points


def test_bridge_refuses_another_release_or_signature_and_ptychodus_still_starts(tmp_path):
    """In a fresh interpreter whose ptychodus claims to be 1.8: the bridge logs why it stays out, patches
    nothing, and ptychodus builds its ModelCore with its own algorithms only."""
    from ptychodus_torch_plugin.ptychodus.bridge import WRAPPED_PARAMETERS, incompatibility

    def init(self, task_manager, settings_registry, product_api, algorithm_libraries):  # noqa: ANN001
        pass

    def moved(self, settings_registry, task_manager, product_api, algorithm_libraries):  # noqa: ANN001
        pass

    assert incompatibility("1.7.0", init) is None and incompatibility("1.7.3", init) is None
    assert "1.8.0" in incompatibility("1.8.0", init) and "(unknown version)" in incompatibility(None, init)
    assert "settings_registry, task_manager" in incompatibility("1.7.0", moved)
    assert WRAPPED_PARAMETERS[0] == "self"
    line, stderr = _algorithms_in_a_fresh_ptychodus(
        tmp_path, "import logging\n"
                  "logging.basicConfig(level=logging.ERROR)\n"
                  "from ptychodus_torch_plugin.ptychodus import bridge\n"
                  "bridge._ptychodus_version = lambda: '1.8.0'\n"
                  "assert bridge.install() is False and not bridge.is_installed()\n")
    assert "ptychodus-torch" not in line and "ptychodus 1.8.0 is not a release this bridge supports" in stderr
