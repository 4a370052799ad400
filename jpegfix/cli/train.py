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
    device: DeviceOpt = "auto",
    threads: Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default).")] = 0,
) -> None:
    """Train a method with its full recipe (all stages, in order, resumable)."""
    import torch

    from jpegfix.errors import JpegfixError
    from jpegfix.train.export import export_run
    from jpegfix.train.loop import Progress, train
    from jpegfix.train.recipes import make_recipe

    if threads:
        torch.set_num_threads(threads)
    if not data and not resume:
        raise typer.BadParameter("give at least one --data folder", param_hint="--data")
    try:
        recipe = make_recipe(method, settings or [], data or [], val or data or [], out / "cache")
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None

    def report(progress: Progress) -> None:
        if progress.validation is not None:
            err_console.print(f"[{progress.stage}] step {progress.step}/{progress.steps} "
                              + " ".join(f"{k}={v:.4g}" for k, v in {**progress.scalars, **progress.validation}.items()))
        elif progress.step % 50 == 0:
            err_console.print(f"[{progress.stage}] step {progress.step}/{progress.steps} "
                              + " ".join(f"{k}={v:.4g}" for k, v in progress.scalars.items()), highlight=False)

    try:
        state = train(recipe, out, device=device, resume=resume, val_every=val_every,
                      checkpoint_every=checkpoint_every, stage=stage, on_progress=report)
        if export:
            command = "jpegfix " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            for path in export_run(recipe, out, state, export, weights_dir, command):
                console.print(f"exported {path}")
    except JpegfixError as error:
        err_console.print(f"error: {error}")
        raise typer.Exit(1) from None
