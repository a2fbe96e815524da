"""Command-line flags for :class:`~..performance.PerformanceConfig`, shared by ``train`` and ``reconstruct``."""

from __future__ import annotations

import argparse

from ..config import PRECISIONS, PerformanceConfig


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("speed (see docs/performance.md)")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="network precision: auto (bf16 for CUDA inference, else fp32), fp32 or bf16")
    group.add_argument("--channels-last", "--channels_last", dest="channels_last",
                       action=argparse.BooleanOptionalAction, default=None,
                       help="NHWC convolutions (default: on for CUDA, off on the CPU)")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the network (slow first call; falls back to eager if it fails)")
    group.add_argument("--cuda-graphs", "--cuda_graphs", dest="cuda_graphs", action="store_true",
                       help="replay the inference pass as a CUDA graph (CUDA only)")


def performance_from_args(args: argparse.Namespace) -> PerformanceConfig:
    config = PerformanceConfig(precision=args.precision, channels_last=args.channels_last,
                               compile=args.compile, cuda_graphs=args.cuda_graphs)
    config.validate()
    return config
