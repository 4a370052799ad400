"""Choosing where networks run and in which precision."""

from __future__ import annotations

import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    """CUDA (this process's LOCAL_RANK GPU under torchrun), then MPS, then CPU, unless ``name`` names one."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def half_dtype(device: torch.device) -> torch.dtype:
    """Inference precision: bfloat16 on GPUs that have it, float16 on other GPUs and MPS, float32 on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32
