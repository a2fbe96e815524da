"""Settings that only a run inside ptychodus has (kept apart from :mod:`.settings`, which needs ptychodus,
so that the settings tables of the specification are made without it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..options import setting


@dataclass(frozen=True)
class PtychodusRunConfig:
    """Settings that only a run inside ptychodus has."""

    model_file: Path | None = setting(None, cli=False, help="model file to reconstruct with (unset: the one "
                                                            "loaded or trained in ptychodus)")
    snapshot_every: int = setting(10, cli=False, minimum=0,
                                  help="hand ptychodus the current object every N epochs of an iterative "
                                       "reconstruction (0: only the result); batch mode saves each as a "
                                       "product file")
    """ptychodus saves every product a reconstructor yields (``product.NNNNNN.h5`` in batch mode), so one
    per epoch would write a file per epoch; pty-chi's backend likewise yields every few epochs."""
