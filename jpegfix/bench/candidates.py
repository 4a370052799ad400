"""Evidence for sampling restorers (One-to-Many): what PSNR does not show.

``jpegfix bench`` scores a sampling model like any other (candidate of seed 0). This probe
adds, per JPEG quality, over whole images compressed by Pillow (4:2:0 for colour):

* ``inside``: the share of the output's luma DCT coefficients that lie inside the input
  file's quantization intervals (coefficients read with jpeglib), for the decoded JPEG, a
  pixel-loss reference model and each candidate: does the output still agree with the file?
* ``diversity``: the mean absolute difference, in grey levels, between candidates of
  different seeds (all pairs), and ``reproducible``: whether seed 0 run twice is identical;
* ``period2``: the RMS amplitude of 2-pixel-period patterns (:func:`jpegfix.metrics.period2_rms`)
  of the original, the JPEG and each model's output, with and without shift-and-average when
  an ablation model (trained without it) is given.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from jpegfix.dct import share_inside
from jpegfix.engine import restore_pixels
from jpegfix.jpeg import compress_with_coefficients
from jpegfix.metrics import period2_rms, psnr
from jpegfix.models.restorer import Restorer
from jpegfix.output import quantize


@dataclass
class QualityEvidence:
    quality: int
    inside: dict[str, float] = field(default_factory=dict)
    """Row name (``jpeg``, a reference model, ``candidates``, an ablation) -> mean share."""
    period2: dict[str, float] = field(default_factory=dict)
    """Row name (``original`` too) -> mean RMS of 2-pixel-period patterns, grey levels."""
    psnr: dict[str, float] = field(default_factory=dict)
    diversity: float = 0.0
    """Mean |candidate_i - candidate_j| over pairs, grey levels."""
    reproducible: bool = True


def _restore(restorer: Restorer, pixels: np.ndarray, components, seed: int) -> np.ndarray:
    return quantize(restore_pixels(restorer, pixels, components, seed=seed), 8)


def _inside(image: np.ndarray, sample) -> float:
    return share_inside(image, sample.quantized[0], sample.components[0].table)


def probe_candidates(
    model: Restorer, images: list[np.ndarray], qualities: tuple[int, ...], *, samples: int = 4,
    reference: Restorer | None = None, ablation: Restorer | None = None,
) -> list[QualityEvidence]:
    """Evidence per quality, averaged over ``images`` ((H, W, C) uint8, the model's channels).

    Raises:
        ValueError: fewer than two samples, or a model that does not sample.
    """
    if samples < 2:
        raise ValueError("diversity needs at least two samples")
    if not model.samples:
        raise ValueError(f"{model.spec.name} does not sample candidates")
    results = []
    for quality in qualities:
        rows: dict[str, dict[str, list[float]]] = {"inside": {}, "period2": {}, "psnr": {}}
        diversity, reproducible = [], True

        def add(metric: str, name: str, value: float) -> None:
            rows[metric].setdefault(name, []).append(value)

        for image in images:
            sample = compress_with_coefficients(image, quality)
            outputs = {"jpeg": sample.decoded}
            if reference is not None:
                outputs[reference.spec.name] = _restore(reference, sample.decoded, sample.components, 0)
            candidates = [_restore(model, sample.decoded, sample.components, seed) for seed in range(samples)]
            reproducible &= bool(np.array_equal(candidates[0], _restore(model, sample.decoded, sample.components, 0)))
            outputs["candidates"] = candidates[0]
            if ablation is not None:
                outputs["no shift-and-average"] = _restore(ablation, sample.decoded, sample.components, 0)
            add("period2", "original", period2_rms(image))
            for name, output in outputs.items():
                add("period2", name, period2_rms(output))
                add("psnr", name, psnr(image, output))
                if name == "candidates":
                    for candidate in candidates:
                        add("inside", name, _inside(candidate, sample))
                else:
                    add("inside", name, _inside(output, sample))
            diversity += [float(np.abs(a.astype(np.int16) - b).mean()) for a, b in itertools.combinations(candidates, 2)]
        mean = lambda table: {name: float(np.mean(values)) for name, values in table.items()}
        results.append(QualityEvidence(quality, mean(rows["inside"]), mean(rows["period2"]), mean(rows["psnr"]),
                                       float(np.mean(diversity)), reproducible))
    return results
