"""Documentation that must keep up with the code."""

from __future__ import annotations

import inspect
from pathlib import Path

from ptychodus_torch_plugin import hookspecs

ROOT = Path(__file__).resolve().parents[1]


def _hook_names() -> list[str]:
    return [name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("ptychodus_torch_")]


def test_there_are_hook_specs_to_document():
    assert len(_hook_names()) >= 8


def test_every_hook_spec_has_a_docstring_and_is_documented_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    undocumented = [name for name in _hook_names() if f"**`{name}(" not in guide]
    assert undocumented == [], f"add these hooks to docs/plugins.md: {undocumented}"
    assert all(inspect.getdoc(getattr(hookspecs, name)) for name in _hook_names())


def test_the_reconstructor_example_in_the_plugin_guide_is_the_tested_module():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    module = (ROOT / "examples" / "epie-reconstructor" / "ptychodus_torch_epie" / "__init__.py").read_text()
    assert f"```python\n{module}```" in guide


def test_readme_quick_start_names_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
