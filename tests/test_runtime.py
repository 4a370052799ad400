"""The runtime layer: choosing a backend and a precision, the export cache, falling back to
torch, reduced precision and batched tiles."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import jpegfix.batch as batch
import jpegfix.engine as engine
import jpegfix.runtime as runtime
from jpegfix.engine import load_restorer, restore_pixels
from jpegfix.models import MODELS
from jpegfix.output import quantize
from jpegfix.qmaps import ijg_components
from jpegfix.runtime import Accelerated, RuntimeFallbackWarning, pick_backend, pick_precision
from tests.conftest import jpeg_bytes, save_jpeg, tiny_args, tiny_restorer

CPU, GPU = torch.device("cpu"), torch.device("cuda")
needs_openvino = pytest.mark.skipif(not runtime.installed("openvino"), reason="openvino (jpegfix[fast]) not installed")


def only(*names):
    return lambda backend: backend in names


def test_auto_picks_the_fastest_installed_cpu_runtime_and_torch_on_gpus():
    assert pick_backend("auto", CPU, available=only("openvino", "onnxruntime"))[0] == "openvino"
    assert pick_backend("auto", CPU, available=only("onnxruntime"))[0] == "onnxruntime"
    assert pick_backend("auto", CPU, "bf16", available=only("onnxruntime"))[0] == "torch"  # fp32 only
    backend, reason = pick_backend("auto", CPU, available=only())
    assert backend == "torch" and "no compiled CPU runtime installed" in reason
    assert pick_backend("auto", GPU, available=only("openvino"))[0] == "torch"
    assert pick_backend("torch", CPU, available=only("openvino")) == ("torch", "asked for")


def test_an_asked_for_runtime_that_is_missing_falls_back_to_torch_with_the_reason():
    backend, reason = pick_backend("openvino", CPU, available=only("onnxruntime"))
    assert backend == "torch" and "openvino is not installed" in reason
    with pytest.raises(ValueError, match="unknown backend"):
        pick_backend("tensorrt", CPU)


def test_auto_precision_is_bf16_only_where_the_cpu_has_it_and_fp32_for_16_bit_output():
    assert pick_precision("auto", CPU, flags={"avx2"})[0] == "fp32"
    assert pick_precision("auto", CPU, flags={"avx2", "amx_bf16"})[0] == "bf16"
    assert pick_precision("auto", CPU, flags={"avx512_bf16"})[0] == "bf16"
    assert pick_precision("auto", CPU, bits=16, flags={"amx_bf16"})[0] == "fp32"
    assert pick_precision("fp16", CPU, bits=16) == ("fp16", "asked for")


def _tiny_qgcn():
    spec = MODELS.get("qgcn-color-s")
    return spec.build(**tiny_args(spec)).eval()


def _inputs(net, height=64, width=80):
    image, maps = torch.rand(1, 3, height, width), torch.rand(1, 2, height, width)
    return image, maps, net.global_vector(image).detach()


@needs_openvino
def test_export_is_cached_and_invalidated_when_the_weights_change():
    net = _tiny_qgcn()
    inputs = _inputs(net)
    first = Accelerated(net, backend="openvino", precision="fp32")
    out = first(*inputs)
    assert first.choice.backend == "openvino" and first.choice.compiled_s > 0
    with torch.no_grad():
        torch.testing.assert_close(out, net(*inputs), atol=1e-4, rtol=0)
    again = Accelerated(net, backend="openvino", precision="fp32")
    again(*_inputs(net, 96, 48))  # another tile size: the same export, no recompiling
    assert again.choice.compiled_s == 0 and again.choice.cache == first.choice.cache
    with torch.no_grad():
        net.tail[-1].bias.add_(0.1)
    changed = Accelerated(net, backend="openvino", precision="fp32")
    out = changed(*inputs)
    assert changed.choice.compiled_s > 0 and changed.choice.cache != first.choice.cache
    with torch.no_grad():
        torch.testing.assert_close(out, net(*inputs), atol=1e-4, rtol=0)


def test_a_runtime_that_fails_to_compile_warns_once_and_torch_gives_the_same_result(monkeypatch):
    def broken(*args):
        raise RuntimeError("compiler exploded")

    monkeypatch.setattr(runtime, "installed", lambda backend: True)
    monkeypatch.setattr(runtime, "_export", lambda *args: False)
    monkeypatch.setattr(runtime, "_load", broken)
    net = _tiny_qgcn()
    inputs = _inputs(net)
    wrapped = Accelerated(net, backend="openvino", precision="fp32")
    with pytest.warns(RuntimeFallbackWarning, match="compiler exploded") as caught:
        out = wrapped(*inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = wrapped(*inputs)  # no second warning
    assert len(caught) == 1
    assert wrapped.choice.backend == "torch" and "openvino failed: compiler exploded" in wrapped.choice.reason
    with torch.no_grad():
        assert torch.equal(out, net(*inputs)) and torch.equal(again, out)


def test_a_compiled_network_that_disagrees_with_torch_on_the_probe_is_not_used(monkeypatch):
    monkeypatch.setattr(runtime, "installed", lambda backend: True)
    monkeypatch.setattr(runtime, "_export", lambda *args: False)
    monkeypatch.setattr(runtime, "_load", lambda *args: lambda arrays: np.zeros_like(arrays[0]))
    net = _tiny_qgcn()
    wrapped = Accelerated(net, backend="onnxruntime", precision="fp32")
    with pytest.warns(RuntimeFallbackWarning, match="differs from torch"):
        wrapped(*_inputs(net))
    assert wrapped.choice.backend == "torch"


def _small_jpeg(photo, quality):
    with Image.open(io.BytesIO(jpeg_bytes(photo[200:296, 160:288], quality=quality))) as image:
        return np.asarray(image), ijg_components(quality, 3)


@pytest.mark.parametrize("backend,precision", [("torch", "bf16"), ("torch", "fp16"), ("openvino", "bf16")])
def test_reduced_precision_stays_within_one_grey_level_of_fp32(photo, backend, precision):
    if backend == "openvino" and not runtime.installed("openvino"):
        pytest.skip("openvino not installed")
    pixels, components = _small_jpeg(photo, 20)
    reference = load_restorer("qgcn-color-s", "cpu", backend="torch", precision="fp32")
    reduced = load_restorer("qgcn-color-s", "cpu", backend=backend, precision=precision)
    expected = quantize(restore_pixels(reference, pixels, components), 8).astype(int)
    got = quantize(restore_pixels(reduced, pixels, components), 8).astype(int)
    assert reduced.runner.choice.precision == precision
    assert np.abs(got - expected).max() <= 1


@pytest.mark.parametrize("name", ["qgcn-color-s", "one-to-many-color-s", "contrastive-color-s"])
def test_batched_tiles_give_the_same_image_as_one_tile_at_a_time(photo, monkeypatch, name):
    restorer = tiny_restorer(name)
    pixels, components = photo[:112, :144], ijg_components(30, 3)
    ticks = []
    one = restore_pixels(restorer, pixels, components, tile=48, overlap=16, seed=2)
    monkeypatch.setattr(engine, "tile_batch", lambda restorer, side: 4)
    batched = restore_pixels(restorer, pixels, components, tile=48, overlap=16, seed=2,
                             on_tile=lambda done, total: ticks.append((done, total)))
    np.testing.assert_allclose(batched, one, atol=1e-5)
    assert ticks[-1][0] == ticks[-1][1] and len(ticks) < ticks[-1][1]  # several tiles per call


def test_decoding_ahead_changes_nothing_but_the_order_of_work(tmp_path, photo, monkeypatch):
    nets = {}
    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: nets.setdefault(name, tiny_restorer(name)))
    for i in range(3):
        save_jpeg(tmp_path / f"{i}.jpg", photo[i * 64 : i * 64 + 48, :64], quality=20)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    outputs = {}
    for prefetch in (False, True):
        jobs, _ = batch.plan_jobs([str(tmp_path / "*.jpg")], tmp_path / f"out{prefetch}")
        results = batch.restore_files(jobs, batch.RestoreOptions(prefetch=prefetch))
        outputs[prefetch] = [(r.source, r.status) for r in results]
        assert [r.status for r in results].count("failed") == 1
    assert outputs[False] == outputs[True]
    for i in range(3):
        a, b = (np.asarray(Image.open(tmp_path / f"out{p}" / f"{i}.png")) for p in (False, True))
        assert np.array_equal(a, b)


def test_the_cli_offers_exactly_the_runtime_choices():
    from jpegfix.cli import options

    assert options.BACKEND_CHOICES == runtime.BACKENDS and options.PRECISION_CHOICES == runtime.PRECISIONS
