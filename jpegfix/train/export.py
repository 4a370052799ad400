"""Export a finished run: weights as safetensors plus a model card built from the run."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import torch

import jpegfix
from jpegfix.models import MODELS
from jpegfix.train.loop import CHECKPOINT, RunState
from jpegfix.weights import save_model


def export_run(recipe, run_dir: Path, state: RunState, name: str, folder: Path, command: str,
               stage: str | None = None) -> list[Path]:
    """Write every network the recipe exports; ``name`` renames the recipe's main export.

    ``stage`` (``jpegfix train --stage NAME --export ...``) exports only what that stage
    trains: a later stage that merely uses a frozen network (CQR's deblock stage and its
    ranker) must not rewrite that network's card with its own command.

    A recipe with several trained networks may say which stage trains each
    (``recipe.stage_of(module) -> stage``): a network whose stage has not run in this run
    folder is not exported (it would be untrained), and its card's validation comes from its
    own stage. A network may add facts to its card (``net.card_facts() -> dict``). A recipe
    that trains a variant of the registered architecture (One-to-Many without
    shift-and-average) says how with ``recipe.arch_overrides(module) -> dict``.
    """
    checkpoint = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    exports = recipe.exports()
    stage_of = getattr(recipe, "stage_of", lambda module: None)
    written = []
    for index, (module_name, model_name) in enumerate(exports.items()):
        trained_by = stage_of(module_name)
        curve = [point for point in state.curve if trained_by is None or point["stage"] == trained_by]
        if trained_by is not None and (not curve or stage not in (None, trained_by)):
            continue
        spec = MODELS.get(model_name)
        net = spec.build(**getattr(recipe, "arch_overrides", lambda module: {})(module_name))
        net.load_state_dict(checkpoint["modules"][module_name])
        out_name = name if index == 0 else model_name
        card = {**_card(recipe, spec, state, out_name, command, curve), **getattr(net, "card_facts", dict)()}
        written += save_model(net, folder, out_name, card, spec.weights_dtype)
    return written


def _card(recipe, spec, state: RunState, name: str, command: str, curve: list[dict]) -> dict:
    final = curve[-1] if curve else {}
    return {
        "name": name,
        "method": spec.method,
        "arch": spec.arch.__name__,
        "description": spec.description,
        "jpegfix_version": jpegfix.__version__,
        "command": _by_name(command, recipe),
        # Data sets by name: a machine's paths say nothing to the card's readers.
        "training_data": [Path(p).name for p in getattr(recipe, "data", [])],
        "validation_data": [Path(p).name for p in getattr(recipe, "val", [])],
        "recipe": json.loads(json.dumps(recipe.config.__dict__, default=list)),
        **recipe.card(),
        "steps": {point["stage"]: point["step"] for point in state.curve},
        # A run's seconds accumulate over its stages and invocations: the last point is the total.
        "wall_time_s": max((point["seconds"] for point in state.curve), default=0.0),
        "cpu_time_s": round(state.cpu_seconds, 1),
        "history": [{**record, "command": _by_name(record.get("command", ""), recipe)} for record in state.history],
        **({"init": state.init} if state.init else {}),
        "device": _device_name(state.history),
        "torch_version": torch.__version__,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "validation": {k: v for k, v in final.items() if k not in ("stage", "step", "seconds", "cpu_seconds")},
        "validation_curve": state.curve,
        "hub": {"repo": spec.hub_repo, "revision": spec.hub_revision},
    }


def _by_name(command: str, recipe) -> str:
    """``command`` with each data folder's path replaced by ``DATA/<its name>``."""
    for folder in [*getattr(recipe, "data", []), *getattr(recipe, "val", [])]:
        command = command.replace(str(folder), f"DATA/{Path(folder).name}")
    return command


def _device_name(history: list[dict]) -> str:
    """The machine the run trained on (this one: runs resume where they started), with the
    threads and bf16 autocast of its invocations."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    from jpegfix.runtime import cpu_model, native_bf16

    threads = sorted({record.get("threads") for record in history if record.get("threads")}) or [torch.get_num_threads()]
    autocast = any(record.get("bf16_autocast") for record in history)
    return (f"CPU: {cpu_model()}{' with AMX / AVX-512 BF16' if native_bf16() else ''}, "
            f"{'/'.join(map(str, threads))} thread(s){', bf16 autocast' if autocast else ''}")
