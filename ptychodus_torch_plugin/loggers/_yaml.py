"""A tiny YAML writer for flat hyperparameter mappings, so ``hparams.yaml`` needs no YAML package.

Every key and string is written as a double-quoted scalar and numbers in a form that both YAML 1.1
(PyYAML) and YAML 1.2 read back as the same type; the output is therefore also almost JSON.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def _printable(ch: str) -> bool:
    """YAML's printable set (section 5.1), minus the line breaks we always escape."""
    code = ord(ch)
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ) and code not in (0x2028, 0x2029, 0xFEFF)


def quote(text: str) -> str:
    """A double-quoted YAML scalar; anything not plainly printable is written as an escape."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # PyYAML (YAML 1.1) reads "1e-05" as a string: its float pattern needs a dot and a signed exponent.
    mantissa, sep, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if sep and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + sep + exponent


def scalar(value: Any) -> str:
    """One value as a YAML scalar; other types (lists, paths...) are written as their str()."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):  # numpy.bool_ is not a bool subclass
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _float(float(value))
    return quote(value if isinstance(value, str) else str(value))


def dump_mapping(params: Mapping[Any, Any]) -> str:
    """A flat block mapping, one ``"key": value`` line per entry, in the mapping's order."""
    if not params:
        return "{}\n"
    return "".join(f"{quote(str(key))}: {scalar(value)}\n" for key, value in params.items())
