"""``jpegfix train``: run a method's recipe, then optionally export its weights and card."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from jpegfix.cli.options import DeviceOpt
from jpegfix.cli.render import console, err_console


def train_command(
    method: Annotated[str, typer.Option("--method", help="qgcn, cqr, contrastive or one-to-many.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, log, patch cache.")],
    data: Annotated[Optional[list[Path]], typer.Option("--data", help="Training image folder (repeatable).")] = None,
    val: Annotated[Optional[list[Path]], typer.Option("--val", help="Held-out validation folder (repeatable).")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="Recipe setting, field=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's checkpoint.")] = False,
    stage: Annotated[Optional[str], typer.Option("--stage", help="Run only this stage; a later stage continues the run folder's checkpoint.")] = None,
    export: Annotated[Optional[str], typer.Option("--export", help="After training, write weights/NAME.safetensors and its card.")] = None,
    weights_dir: Annotated[Path, typer.Option("--weights-dir", help="Where --export writes.")] = Path("weights"),
    val_every: Annotated[int, typer.Option(help="Validate every N steps.")] = 500,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 250,
    init: Annotated[Optional[str], typer.Option("--init", help="Start from this model's shipped weights (when the run folder has no checkpoint).")] = None,
    device: DeviceOpt = "auto",
    threads: Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default).")] = 0,
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast on GPUs and on CPUs with AMX / AVX-512 BF16.")] = True,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="Channels-last tensors (default: where bf16 autocast runs).")] = None,
    ema: Annotated[float, typer.Option("--ema", min=0.0, max=0.9999, help="Validate and export a moving average of the weights with this decay (e.g. 0.999); 0: off.")] = 0.0,
) -> None:
    """Train a method with its full recipe (all stages, in order, resumable)."""
    import torch

    from jpegfix.errors import JpegfixError
    from jpegfix.train.export import export_run
    from jpegfix.train.loop import train
    from jpegfix.train.recipes import make_recipe

    if threads:
        torch.set_num_threads(threads)
    if not data and not resume:
        raise typer.BadParameter("give at least one --data folder", param_hint="--data")
    try:
        recipe = make_recipe(method, settings or [], data or [], val or data or [], out / "cache")
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None

    report = TrainingDisplay()
    command = "jpegfix " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        state = train(recipe, out, device=device, resume=resume, val_every=val_every,
                      checkpoint_every=checkpoint_every, amp=amp, channels_last=channels_last, stage=stage, init=init, command=command,
                      ema=ema, on_progress=report)
        report.close()
        if export:
            for path in export_run(recipe, out, state, export, weights_dir, command, stage):
                console.print(f"exported {path}")
    except JpegfixError as error:
        err_console.print(f"error: {error}", markup=False)
        raise typer.Exit(1) from None
    finally:
        report.close()


class TrainingDisplay:
    """Training progress on stderr: a Rich bar per stage on a terminal (steps/s, time left,
    latest losses), plain lines every 50 steps otherwise (log files, CI); validation results
    are always printed as a line of their own."""

    PLAIN_EVERY = 50

    def __init__(self) -> None:
        self.bar = None
        self.task = None
        self.stage = ""

    def __call__(self, progress) -> None:
        if err_console.is_terminal:
            self._update_bar(progress)
        elif progress.step % self.PLAIN_EVERY == 0 and progress.validation is None:
            self._line(progress, progress.scalars)
        if progress.validation is not None:
            self._line(progress, {**progress.scalars, **progress.validation})

    def _line(self, progress, values: dict) -> None:
        text = f"[{progress.stage}] step {progress.step}/{progress.steps} " + " ".join(f"{k}={v:.4g}" for k, v in values.items())
        (self.bar.console if self.bar else err_console).print(text, markup=False, highlight=False)

    def _update_bar(self, progress) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if progress.stage != self.stage:
            self.close()
            self.stage = progress.stage
            self.bar = Progress(TextColumn(f"{progress.stage}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"),
                                TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=err_console)
            self.bar.start()
            self.task = self.bar.add_task(progress.stage, total=progress.steps, completed=progress.step - 1,
                                          rate="", losses="")
        task = self.bar.tasks[0]
        rate = f"{task.speed:.2f} steps/s" if task.speed else ""
        losses = " ".join(f"{k}={v:.3g}" for k, v in progress.scalars.items())
        self.bar.update(self.task, completed=progress.step, rate=rate, losses=losses)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
