"""Published peer networks measured beside jpegfix models: ARCNN and DnCNN-3.

Both are grey (luma) models, rebuilt here from their papers and loaded from the authors'
released MATLAB weights (see ``../shared/peers/README.md`` for the file layouts):

* ARCNN (Dong et al., ICCV 2015): four convolutions 9x9 -> 64, 7x7 -> 32, 1x1 -> 16,
  5x5 -> 1, ReLU after the first three, one model per JPEG quality 10/20/30/40. The
  authors' MATLAB code filters with ``imfilter(..., 'same', 'replicate')``: correlation
  (no kernel flip) with replicate padding, each kernel reshaped column-major.
* DnCNN-3 (Zhang et al., TIP 2017): 20 3x3 convolutions of width 64 with zero padding,
  ReLU between them, BatchNorm already folded into the convolutions of the released file;
  blind over qualities, and residual: output = input - network(input).

Inputs are luma in [0, 1] (uint8 / 255); outputs are rounded back to uint8. scipy (ARCNN,
MATLAB v5) and h5py (DnCNN-3, MATLAB v7.3) are optional imports needed only here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jpegfix.errors import DataError, InputError, MissingWeightsError
from jpegfix.jpeg import ComponentTable
from jpegfix.qmaps import estimate_quality

PEERS = ("arcnn", "dncnn3")
"""Peer row names, in table order."""

ARCNN_QUALITIES = (10, 20, 30, 40)
DEFAULT_PEERS_DIR = Path("../shared/peers")

_FILES = {
    "arcnn": tuple(f"arcnn/q{q}.mat" for q in ARCNN_QUALITIES),
    "dncnn3": ("dncnn3/DnCNN3.mat",),
}
_PAPERS = {
    "arcnn": "Dong et al., Compression Artifacts Reduction by a Deep Convolutional Network, ICCV 2015",
    "dncnn3": "Zhang et al., Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising, TIP 2017",
}


class ARCNN(nn.Module):
    """AR-CNN: (N, 1, H, W) luma in [0, 1] -> same shape; replicate padding keeps the size."""

    def __init__(self, *, channels: int = 1, widths: tuple[int, ...] = (64, 32, 16),
                 kernels: tuple[int, ...] = (9, 7, 1, 5)) -> None:
        super().__init__()
        if len(kernels) != len(widths) + 1:
            raise ValueError("ARCNN needs one kernel size per convolution (len(widths) + 1)")
        self.channels, self.widths, self.kernels = channels, tuple(widths), tuple(kernels)
        sizes = (channels, *widths, channels)
        self.convs = nn.ModuleList(
            nn.Conv2d(sizes[i], sizes[i + 1], kernels[i]) for i in range(len(kernels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, conv in enumerate(self.convs):
            pad = conv.kernel_size[0] // 2
            if pad:
                x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
            x = conv(x)
            if index < len(self.convs) - 1:
                x = F.relu(x)
        return x


class DnCNN(nn.Module):
    """DnCNN with folded BatchNorm: (N, C, H, W) in [0, 1] -> input minus predicted artifacts."""

    def __init__(self, *, depth: int = 20, width: int = 64, channels: int = 1) -> None:
        super().__init__()
        self.depth, self.width, self.channels = depth, width, channels
        sizes = (channels, *([width] * (depth - 1)), channels)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Conv2d(sizes[i], sizes[i + 1], 3, padding=1))
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


@dataclass(frozen=True)
class PeerSpec:
    """The subset of :class:`jpegfix.models.ModelSpec` the benchmark reads, for a peer."""

    name: str
    channels: int = 1
    needs_tables: bool = False
    """ARCNN reads the luma table only to pick its per-quality model."""
    method: str = "peer"


class PeerRestorer:
    """A loaded peer with the restorer call contract of :mod:`jpegfix.engine`.

    ``restore(pixels, components)`` takes (H, W, 1) uint8 luma and returns (H, W, 1) uint8.
    Images are processed whole (``tile`` is accepted and ignored).
    """

    def __init__(self, spec: PeerSpec, net: nn.Module, device: torch.device, card: dict[str, Any]) -> None:
        self.spec, self.net, self.device, self.card = spec, net.to(device).eval(), device, card

    def _network_for(self, components: list[ComponentTable] | None) -> nn.Module:
        if self.spec.name != "arcnn":
            return self.net
        if not components:
            raise InputError("arcnn needs the JPEG's luma table to pick its per-quality model")
        return self.net[f"q{arcnn_quality(components[0].table)}"]

    def restore(self, pixels: np.ndarray, components: list[ComponentTable] | None = None, tile: int = 0) -> np.ndarray:
        if pixels.ndim != 3 or pixels.shape[2] != 1:
            raise InputError(f"{self.spec.name} restores one luma channel, got shape {pixels.shape}")
        net = self._network_for(components)
        with torch.inference_mode():
            x = torch.from_numpy(np.array(pixels[..., 0], dtype=np.float32)).to(self.device)
            y = net(x[None, None] / 255.0)[0, 0]
            out = torch.clamp(torch.round(y * 255.0), 0, 255).to(torch.uint8).cpu().numpy()
        return out[..., None]


def arcnn_quality(table: np.ndarray) -> int:
    """The ARCNN model quality (10/20/30/40) nearest to the IJG quality of a luma table."""
    quality, _ = estimate_quality(np.asarray(table))
    return min(ARCNN_QUALITIES, key=lambda q: (abs(q - quality), q))


def default_peers_dir() -> Path | None:
    """``../shared/peers`` relative to the current folder when it exists, else None."""
    return DEFAULT_PEERS_DIR.resolve() if DEFAULT_PEERS_DIR.is_dir() else None


def peer_files(name: str, peers_dir: str | Path) -> list[Path]:
    return [Path(peers_dir) / f for f in _FILES[name]]


def available_peers(peers_dir: str | Path | None) -> list[str]:
    """Peers whose weight files are all present under ``peers_dir``."""
    if peers_dir is None:
        return []
    return [name for name in PEERS if all(p.is_file() for p in peer_files(name, peers_dir))]


def load_peer(name: str, peers_dir: str | Path | None, device: torch.device | str = "cpu") -> PeerRestorer:
    """Load peer ``name`` (``arcnn`` or ``dncnn3``) from ``peers_dir``.

    Raises:
        MissingWeightsError: no peers folder or a weight file is missing.
        DataError: a weight file does not have the expected layout.
    """
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}")
    if peers_dir is None:
        raise MissingWeightsError(f"{name} weights: no peers folder (pass --peers-dir)")
    files = peer_files(name, peers_dir)
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise MissingWeightsError(f"{name} weights not found: {', '.join(missing)}")
    device = torch.device(device)
    if name == "arcnn":
        net: nn.Module = nn.ModuleDict({f"q{q}": load_arcnn(p) for q, p in zip(ARCNN_QUALITIES, files)})
        spec = PeerSpec("arcnn", needs_tables=True)
        arch = {"arch": "ARCNN", "kernels": [9, 7, 1, 5], "widths": [64, 32, 16], "padding": "replicate",
                "models": {f"q{q}": "JPEG quality " + str(q) for q in ARCNN_QUALITIES},
                "model_choice": "nearest of 10/20/30/40 to the IJG quality of the luma table"}
    else:
        net = load_dncnn3(files[0])
        spec = PeerSpec("dncnn3")
        arch = {"arch": "DnCNN", "depth": 20, "width": 64, "padding": "zeros", "residual": "x - net(x)"}
    card = {
        "name": name, "paper": _PAPERS[name], "input": "luma uint8 / 255, output rounded to uint8",
        **arch, "weights": {str(p): _sha256(p) for p in files},
    }
    return PeerRestorer(spec, net, device, card)


def load_arcnn(path: str | Path) -> ARCNN:
    """ARCNN from one of the authors' MATLAB v5 files (``q10.mat`` ...).

    Each ``weights_convN`` is (in, k*k, out) (``weights_conv3``: (in, k*k)); a kernel is the
    column-major reshape of its k*k vector, so entry (r, c) is element r + k*c.

    Raises:
        MissingWeightsError: scipy is not installed.
        DataError: the file lacks a layer or has unexpected shapes.
    """
    try:
        from scipy.io import loadmat
    except ImportError:
        raise MissingWeightsError("loading ARCNN weights needs scipy (pip install scipy)") from None
    try:
        mat = loadmat(str(path))
    except Exception as error:  # scipy raises several types for unreadable files
        raise DataError(f"cannot read ARCNN weights {path}: {error}") from None
    net = ARCNN()
    for conv, layer in zip(net.convs, ("conv1", "conv2", "conv22", "conv3")):
        try:
            weights = np.asarray(mat[f"weights_{layer}"], dtype=np.float32)
            bias = np.asarray(mat[f"biases_{layer}"], dtype=np.float32).ravel()
        except KeyError as error:
            raise DataError(f"ARCNN weights {path} lack {error.args[0]}") from None
        if weights.ndim == 2:  # the last layer's single output axis is dropped by MATLAB
            weights = weights[..., None]
        out_ch, in_ch, k, _ = conv.weight.shape
        if weights.shape != (in_ch, k * k, out_ch) or bias.shape != (out_ch,):
            raise DataError(f"ARCNN weights {path}: {layer} has shape {weights.shape}, expected {(in_ch, k * k, out_ch)}")
        kernel = weights.reshape(in_ch, k, k, out_ch, order="F").transpose(3, 0, 1, 2)
        conv.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
        conv.bias.data.copy_(torch.from_numpy(bias))
    return net


def load_dncnn3(path: str | Path) -> DnCNN:
    """DnCNN-3 from the released MatConvNet ``simplenn`` file (MATLAB v7.3 / HDF5).

    HDF5 stores MATLAB arrays with their dimensions reversed: a (H, W, in, out) MATLAB kernel
    reads as (out, in, W, H), so the two spatial axes are swapped back; the last layer's
    trailing singleton ``out`` is dropped by MATLAB and restored here.

    Raises:
        MissingWeightsError: h5py is not installed.
        DataError: the layer list is not 20 conv layers with ReLUs between them.
    """
    try:
        import h5py
    except ImportError:
        raise MissingWeightsError("loading DnCNN-3 weights needs h5py (pip install h5py)") from None
    try:
        with h5py.File(str(path), "r") as f:
            refs = np.asarray(f["net/layers"]).ravel()
            layers = [_matconvnet_layer(f, f[ref]) for ref in refs]
    except (OSError, KeyError) as error:
        raise DataError(f"cannot read DnCNN-3 weights {path}: {error}") from None
    convs = [layer for layer in layers if layer["type"] == "conv"]
    kinds = [layer["type"] for layer in layers]
    if kinds != ["conv", "relu"] * (len(convs) - 1) + ["conv"]:
        raise DataError(f"DnCNN-3 weights {path}: unexpected layer sequence {kinds}")
    net = DnCNN(depth=len(convs))
    torch_convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    for conv, layer in zip(torch_convs, convs):
        kernel = layer["kernel"]
        if kernel.ndim == 3:
            kernel = kernel[None]
        kernel = kernel.transpose(0, 1, 3, 2)
        if kernel.shape != tuple(conv.weight.shape) or layer["pad"] != 1 or layer["stride"] != 1:
            raise DataError(f"DnCNN-3 weights {path}: layer {layer['name']} has kernel {kernel.shape}, "
                            f"pad {layer['pad']}, stride {layer['stride']}")
        conv.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32)))
        conv.bias.data.copy_(torch.from_numpy(layer["bias"].astype(np.float32).ravel()))
    for layer in layers:
        if layer["type"] == "relu" and layer.get("leak", 0.0) != 0.0:
            raise DataError(f"DnCNN-3 weights {path}: leaky ReLU in {layer['name']}")
    return net


def _matconvnet_layer(f: Any, group: Any) -> dict[str, Any]:
    def text(name: str) -> str:
        return "".join(chr(int(c)) for c in np.asarray(group[name]).ravel())

    layer: dict[str, Any] = {"type": text("type"), "name": text("name")}
    if layer["type"] == "conv":
        kernel_ref, bias_ref = np.asarray(group["weights"]).ravel()
        layer["kernel"] = np.asarray(f[kernel_ref])
        layer["bias"] = np.asarray(f[bias_ref])
        pads = np.asarray(group["pad"]).ravel().astype(int)  # one value or [top bottom left right]
        layer["pad"] = int(pads[0]) if (pads == pads[0]).all() else tuple(pads.tolist())
        layer["stride"] = int(np.asarray(group["stride"]).ravel()[0])
    elif "leak" in group:
        layer["leak"] = float(np.asarray(group["leak"]).ravel()[0])
    return layer


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
