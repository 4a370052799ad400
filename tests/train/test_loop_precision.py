"""The loop trains in bf16 autocast only where the device computes in bf16 natively."""

import torch

from jpegfix.train import loop


def test_bf16_autocast_only_on_cpus_that_compute_in_bf16(monkeypatch):
    monkeypatch.setattr(loop, "native_bf16", lambda: False)
    emulated = loop.Context(torch.device("cpu"), amp=True, distributed=False)
    assert not emulated.amp and not torch.is_autocast_enabled("cpu")
    with emulated.autocast():
        assert not torch.is_autocast_enabled("cpu")

    monkeypatch.setattr(loop, "native_bf16", lambda: True)
    native = loop.Context(torch.device("cpu"), amp=True, distributed=False)
    with native.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not loop.Context(torch.device("cpu"), amp=False, distributed=False).amp
