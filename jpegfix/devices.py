"""Choosing where networks run and in which precision."""

from __future__ import annotations

import os

import torch

from jpegfix.errors import DeviceError

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"


def pick_device(name: str = "auto") -> torch.device:
    """CUDA (this process's LOCAL_RANK GPU under torchrun), then MPS, then CPU, unless ``name`` names one.

    Raises:
        DeviceError: ``name`` is not a device name, or that device is not available here.
    """
    if name != "auto":
        return _available(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _available(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {name!r} (use {DEVICE_NAMES})") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{name}: CUDA is not available (this PyTorch build or machine has no usable GPU)")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise DeviceError(f"{name}: no such GPU (this machine has {count}: cuda:0..cuda:{count - 1})")
        return device
    if device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError(f"{name}: Apple MPS is not available on this machine")
        return device
    raise DeviceError(f"{name}: device type {device.type!r} is not supported (use {DEVICE_NAMES})")
