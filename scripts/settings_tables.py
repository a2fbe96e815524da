"""The settings tables of specs/ptychodus_api_spec.md, made from the settings' declarations.

    python scripts/settings_tables.py          # print the tables
    python scripts/settings_tables.py --write  # replace the generated blocks of the specification

Each table sits between ``<!-- settings: ClassName -->`` and ``<!-- end settings -->``;
tests/test_cli_conventions.py fails when the specification and the declarations differ.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, PerformanceConfig, TrainingConfig  # noqa: E402
from ptychodus_torch_plugin.options import declared  # noqa: E402
from ptychodus_torch_plugin.ptychodus.run_config import PtychodusRunConfig  # noqa: E402
from ptychodus_torch_plugin.reconstructors.iterative.config import IterativeConfig  # noqa: E402
from ptychodus_torch_plugin.reconstructors.network_options import NetworkOptions  # noqa: E402

SPEC = ROOT / "specs" / "ptychodus_api_spec.md"
CLASSES = {cls.__name__: cls for cls in (ModelConfig, TrainingConfig, ExecutionConfig, PerformanceConfig,
                                          IterativeConfig, NetworkOptions, PtychodusRunConfig)}
BLOCK = re.compile(r"(<!-- settings: (\w+) -->\n)(.*?)(<!-- end settings -->)", re.S)


def table(cls: type) -> str:
    """One row per declared field: name, flag, ptychodus setting, type, default, help."""
    rows = ["| field | flag | ptychodus setting | type | default | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for item in declared(cls):
        flag = f"`{item.flag}`" if item.setting.cli else "-"
        if item.setting.cli and item.setting.aliases:
            flag += " (also " + ", ".join(f"`{a}`" for a in item.setting.aliases) + ")"
        name = item.ptychodus_name
        if name is not None and item.setting.unset is not None:
            name = f"`{name}` ({item.setting.unset} = none)"
        elif name is not None:
            name = f"`{name}`"
        kind = item.kind.__name__ + (" or None" if item.optional else "")
        default = "required" if item.setting.required else f"`{item.show(item.default) if item.default is not None else 'None'}`"
        meaning = item.setting.help.replace("|", "\\|")
        if item.setting.choices:
            meaning += " (" + ", ".join(f"`{c}`" for c in item.setting.choices) + ")"
        rows.append(f"| `{item.name}` | {flag} | {name or '-'} | {kind} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + table(CLASSES[m.group(2)]) + m.group(4), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the specification's generated blocks")
    args = parser.parse_args()
    if args.write:
        SPEC.write_text(render(SPEC.read_text()))
    else:
        for name, cls in CLASSES.items():
            print(f"### {name}\n\n{table(cls)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
