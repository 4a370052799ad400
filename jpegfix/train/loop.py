"""The one training loop every method uses.

Runs a recipe's stages in order with Adam and a cosine learning-rate schedule, validates
every ``val_every`` steps, checkpoints atomically every ``checkpoint_every`` steps and at
each stage end, and resumes from the last checkpoint. Under ``torchrun`` each process
trains on its own slice of the batches and gradients are averaged by DistributedDataParallel;
only rank 0 validates, logs and writes files. With a weight average (``ema``), each stage's
trained networks are validated and handed on as the moving average of their weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from jpegfix.devices import pick_device
from jpegfix.errors import JpegfixError
from jpegfix.runtime import native_bf16
from jpegfix.train.averaging import WeightAverage
from jpegfix.train.recipe import Recipe, Stage

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
WARMUP_SHARE = 0.02


@dataclass
class Progress:
    """What the loop reports to its caller after each step and validation."""

    stage: str
    step: int
    steps: int
    scalars: dict[str, float]
    validation: dict[str, float] | None = None


class Context:
    """The loop's side of :class:`jpegfix.train.recipe.TrainContext`."""

    def __init__(self, device: torch.device, amp: bool, distributed: bool, ema: float = 0.0):
        self.device = device
        # bf16 autocast where the hardware computes in bf16: GPUs, and CPUs with AMX or
        # AVX-512 BF16 (2.3-3.2x faster steps on a Xeon with AMX, docs/training.md). Elsewhere
        # a CPU would emulate it, which is slower than float32.
        self.amp = amp and (device.type == "cuda" or (device.type == "cpu" and native_bf16()))
        self.distributed = distributed
        self.ema = ema
        self.averages: dict[str, WeightAverage] = {}
        """The moving average of each top-level module the current stage trains (``ema`` > 0)."""
        self.modules: dict[str, nn.Module] = {}
        self.wrapped: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))

    def resolve(self, name: str) -> nn.Module:
        """A recipe module by name, or one of its parts by dotted path (``net.encoder``)."""
        top, _, part = name.partition(".")
        module = self.modules[top]
        return module.get_submodule(part) if part else module

    def net(self, name: str) -> nn.Module:
        """The module to call in a step (its DDP wrapper when it is trained under torchrun)."""
        return self.wrapped[name] if name in self.wrapped else self.resolve(name)

    def autocast(self):
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, optimizer: str) -> None:
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def start_stage(self, stage: Stage) -> None:
        # Top-level modules first, then dotted parts: "net" trainable with "net.encoder"
        # frozen trains everything in net except its encoder, which stays in eval mode.
        for name, module in self.modules.items():
            trained = name in stage.trainable
            module.train(trained)
            module.requires_grad_(trained)
        for name in stage.trainable:
            self.resolve(name).train(True).requires_grad_(True)
        for name in stage.frozen:
            self.resolve(name).train(False).requires_grad_(False)
        self.optimizers = {
            name: torch.optim.Adam([p for p in self.resolve(name).parameters() if p.requires_grad],
                                   lr=stage.lr, betas=stage.betas)
            for name in stage.trainable
        }
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(stage.steps, stage.warmup))
            for name, opt in self.optimizers.items()
        }
        trained_modules = dict.fromkeys(name.partition(".")[0] for name in stage.trainable)
        self.averages = {name: WeightAverage(self.modules[name], self.ema) for name in trained_modules} if self.ema else {}
        self.wrapped = {}
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = {n: DistributedDataParallel(self.resolve(n), device_ids=ids) for n in stage.trainable}


def cosine_with_warmup(steps: int, warmup: int = 0) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup`` steps (0: 2% of the steps), then
    cosine to 1% of the peak."""
    warmup = max(1, warmup or int(steps * WARMUP_SHARE))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@dataclass
class RunState:
    """Everything a checkpoint holds besides weights and optimiser states."""

    stage_index: int = 0
    step: int = 0
    seconds: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    """CPU time of the training process over every invocation (all threads): on a shared
    machine it, not wall time, is what makes runs of different recipes comparable."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One record per invocation of ``train`` on this run folder: command, start, threads,
    device, the stage and step it started at."""
    init: dict[str, Any] = field(default_factory=dict)
    """Where the weights started when not from scratch: the model, its sha256 and its own
    card's curve and commands, so a card keeps the lineage across run folders."""


def train(
    recipe: Recipe,
    run_dir: Path,
    *,
    device: str = "auto",
    resume: bool = False,
    val_every: int = 500,
    checkpoint_every: int = 250,
    amp: bool = True,
    channels_last: bool | None = None,
    stage: str | None = None,
    init: str | None = None,
    command: str = "",
    ema: float = 0.0,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> RunState:
    """Train ``recipe`` into ``run_dir`` and return the final :class:`RunState`.

    ``stage`` runs only the stage of that name. A later stage continues the run folder's
    checkpoint (``resume`` is implied), so the stages before it must have finished there.
    ``init`` names a registered model whose verified weights start the recipe's main
    network when the run folder has no checkpoint (a run folder lost between sessions
    resumes from the shipped weights). ``command`` is recorded in the run's history.
    ``amp`` trains under bf16 autocast where the device computes in bf16 natively;
    ``channels_last`` keeps the networks' tensors channels-last (None: where bf16 autocast
    runs, the only place it measured faster, docs/training.md). Neither changes what is
    saved: weights stay float32. ``ema`` (a decay such as 0.999; 0: off) keeps a moving
    average of the trained networks' weights: validation scores it (and logs the raw
    weights' headline as ``raw_<name>``), and at each stage's end the networks take it, so
    later stages, the checkpoint and ``--export`` get the averaged weights.

    Raises:
        JpegfixError: ``stage`` cannot run in this run folder (unknown, earlier stages not
        finished, or already finished).
    """
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    ctx = Context(pick_device(device), amp, distributed, ema)
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    if channels_last is None:
        channels_last = ctx.amp
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    ctx.modules = {name: m.to(ctx.device, memory_format=memory_format) for name, m in recipe.build(ctx).items()}
    state = RunState()
    checkpoint_path = run_dir / CHECKPOINT
    stages, only = recipe.stages(), stage
    if only is not None and only in [s.name for s in stages[1:]]:
        resume = True  # a later stage starts from the weights the earlier ones left
    if resume and checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, ctx)
        _reopen_extended_stage(state, stages)
    else:
        if init:
            state.init = _initialise(recipe, ctx, init)
        if ctx.rank == 0:
            _write_json(run_dir / "recipe.json", {"method": recipe.method, "config": _plain(recipe.config)})
    end = len(stages)
    if only is not None:
        end = _check_stage(stages, only, state, run_dir) + 1
    state.history.append({
        "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "threads": torch.get_num_threads(), "device": str(ctx.device),
        "bf16_autocast": ctx.amp, "channels_last": channels_last,
        "stage": stages[min(state.stage_index, len(stages) - 1)].name, "step": state.step,
        **({"weight_average": ema} if ema else {}),
    })
    for index in range(state.stage_index, end):
        stage = stages[index]
        ctx.start_stage(stage)
        first = state.step if index == state.stage_index else 0
        if first:
            _restore_optimizers(checkpoint_path, ctx)
        batch_of = stage.make_batches(ctx)
        started = time.perf_counter() - state.seconds
        cpu_started = time.process_time() - state.cpu_seconds
        for step in range(first, stage.steps):
            scalars = stage.step(batch_of(step * ctx.world_size + ctx.rank), ctx)
            for scheduler in ctx.schedulers.values():
                scheduler.step()
            for name, average in ctx.averages.items():
                average.update(ctx.modules[name])
            state.stage_index, state.step = index, step + 1
            state.seconds = time.perf_counter() - started
            state.cpu_seconds = time.process_time() - cpu_started
            validation = None
            last = step + 1 == stage.steps
            if ctx.rank == 0 and ((step + 1) % val_every == 0 or last):
                validation = _validate(recipe, ctx, stage)
                point = {"stage": stage.name, "step": step + 1, "seconds": round(state.seconds, 1),
                         "cpu_seconds": round(state.cpu_seconds, 3), **validation}
                state.curve.append(point)
                _append_log(run_dir, {**point, **scalars})
            if ctx.rank == 0 and ((step + 1) % checkpoint_every == 0 or last):
                _save_checkpoint(checkpoint_path, ctx, state)
            on_progress(Progress(stage.name, step + 1, stage.steps, scalars, validation))
        for name, average in ctx.averages.items():
            average.apply_to(ctx.modules[name])
        state.stage_index, state.step = index + 1, 0
        if ctx.rank == 0:
            _save_checkpoint(checkpoint_path, ctx, state)
    if distributed:
        torch.distributed.destroy_process_group()
    return state


def _initialise(recipe: Recipe, ctx: Context, model: str) -> dict[str, Any]:
    """Load registered ``model``'s verified weights into the recipe's main exported network
    and return the lineage record for :attr:`RunState.init`.

    Raises:
        JpegfixError: unknown model, missing weights, or an architecture that does not match.
    """
    from jpegfix.models import MODELS
    from jpegfix.weights import load_model

    module, _ = next(iter(recipe.exports().items()))
    net, card = load_model(MODELS.get(model), download=False)
    target, state = ctx.modules[module], net.state_dict()
    try:
        if hasattr(target, "load_shallower"):  # also a deeper variant (recipe setting ``arch``)
            grown = target.load_shallower(state)
        else:
            target.load_state_dict(state)
            grown = []
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise JpegfixError(f"--init {model}: its weights do not fit this recipe's network ({first})") from None
    card = card or {}
    return {"model": model, **({"grown": grown} if grown else {}), "sha256": card.get("sha256"), "command": card.get("command"),
            "history": card.get("history", []), "init": card.get("init", {}),
            "validation_curve": card.get("validation_curve", []), "wall_time_s": card.get("wall_time_s")}


def _validate(recipe: Recipe, ctx: Context, stage: Stage) -> dict[str, float]:
    """The recipe's scores, of the averaged weights when the loop keeps an average (plus
    the raw weights' headline, so the curve shows what averaging buys)."""
    if not ctx.averages:
        return _scores(recipe, ctx)
    raw = _scores(recipe, ctx)
    with contextlib.ExitStack() as swapped:
        for name, average in ctx.averages.items():
            swapped.enter_context(average.swapped_into(ctx.modules[name]))
        scores = _scores(recipe, ctx)
    headline = next(iter(raw))
    return {**scores, f"raw_{headline}": raw[headline]}


def _scores(recipe: Recipe, ctx: Context) -> dict[str, float]:
    # Each submodule's own mode is put back, so frozen parts of trained modules stay in eval.
    modes = {m: m.training for module in ctx.modules.values() for m in module.modules()}
    for module in ctx.modules.values():
        module.eval()
    with torch.no_grad():
        scores = recipe.validate(ctx)
    for module, mode in modes.items():
        module.training = mode
    return {k: round(float(v), 4) for k, v in scores.items()}


def _reopen_extended_stage(state: RunState, stages: list[Stage]) -> None:
    """Continue a finished stage whose step count was raised (``--resume --set
    restore_steps=5000`` after 3000): the run goes back into that stage at the step it
    reached, and later stages, if any, run again after it. The learning-rate schedule is
    recomputed for the new length, so training resumes with a warm restart."""
    for index in range(min(state.stage_index, len(stages)) - 1, -1, -1):
        done = max((p["step"] for p in state.curve if p["stage"] == stages[index].name), default=None)
        if done is not None and done < stages[index].steps:
            state.stage_index, state.step = index, done
            return
        if done is not None:
            return


def _check_stage(stages: list[Stage], name: str, state: RunState, run_dir: Path) -> int:
    """Index of stage ``name``, checked against what the run folder has finished."""
    names = [s.name for s in stages]
    if name not in names:
        raise JpegfixError(f"no stage {name!r}; stages: {', '.join(names)}")
    index = names.index(name)
    if state.stage_index < index:
        raise JpegfixError(f"stage {name!r} needs stage {names[state.stage_index]!r} finished in {run_dir} first")
    if state.stage_index > index:
        raise JpegfixError(f"stage {name!r} already finished in {run_dir}")
    return index


def _save_checkpoint(path: Path, ctx: Context, state: RunState) -> None:
    payload = {
        "modules": {n: m.state_dict() for n, m in ctx.modules.items()},
        "optimizers": {n: o.state_dict() for n, o in ctx.optimizers.items()},
        "schedulers": {n: s.state_dict() for n, s in ctx.schedulers.items()},
        "averages": {n: a.state_dict() for n, a in ctx.averages.items()},
        "state": asdict(state),
    }
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _load_checkpoint(path: Path, ctx: Context) -> RunState:
    payload = torch.load(path, map_location=ctx.device, weights_only=False)
    for name, module in ctx.modules.items():
        module.load_state_dict(payload["modules"][name])
    return RunState(**payload["state"])


def _restore_optimizers(path: Path, ctx: Context) -> None:
    payload = torch.load(path, map_location=ctx.device, weights_only=False)
    for name, opt in ctx.optimizers.items():
        opt.load_state_dict(payload["optimizers"][name])
        ctx.schedulers[name].load_state_dict(payload["schedulers"][name])
    # A run that kept no average (or a stage that started without one) starts it here.
    for name, average in ctx.averages.items():
        if name in payload.get("averages", {}):
            average.load_state_dict(payload["averages"][name])


def _append_log(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / LOG, "a") as log:
        log.write(json.dumps(record) + "\n")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _plain(config: Any) -> Any:
    return asdict(config) if is_dataclass(config) else config
