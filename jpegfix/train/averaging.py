"""An exponential moving average of a network's weights (Polyak averaging).

Small CPU batches make the last steps of a fine-tune noisy: the weights at any one step sit
somewhere in a cloud around the optimum the schedule is heading for. The average over the
last few hundred steps sits nearer its centre, for one ``lerp`` per tensor per step.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn


class WeightAverage:
    """The running average of ``module``'s state (parameters and float buffers; integer
    buffers such as BatchNorm's step count follow the module).

    The decay ramps up as ``(1 + n) / (10 + n)`` before it reaches ``decay``, so the first
    hundreds of updates are not tied to the starting weights: a leg of a few thousand steps
    averages over its own recent steps, not over where it began.
    """

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"weight-average decay must lie in (0, 1), not {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        keep = self.current_decay()
        for key, value in module.state_dict().items():
            average = self.shadow[key]
            if average.is_floating_point():
                average.lerp_(value.detach(), 1.0 - keep)
            else:
                average.copy_(value)

    def apply_to(self, module: nn.Module) -> None:
        """Give ``module`` the averaged weights (it keeps its tensors and memory format)."""
        module.load_state_dict(self.shadow)

    @contextlib.contextmanager
    def swapped_into(self, module: nn.Module) -> Iterator[None]:
        """``module`` holds the averaged weights inside the block and its own after it."""
        own = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.apply_to(module)
        try:
            yield
        finally:
            module.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)
