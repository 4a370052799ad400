"""The Python API: every kind of image in, the same kind out, through the CLI's pixel path."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegfix
from jpegfix.engine import DEFAULT_TABLE_MODELS
from jpegfix.errors import InputError, MissingWeightsError

from conftest import REPO, jpeg_bytes, save_jpeg, tiny_restorer


@pytest.fixture
def tiny_models(monkeypatch):
    """Tiny random networks behind the real Restorer, recording which model each image got."""
    import jpegfix.engine as engine

    chosen, nets = [], {}

    def load(name, device, **runtime):
        chosen.append(name)
        return nets.setdefault(name, tiny_restorer(name))

    monkeypatch.setattr(engine, "load_restorer", load)
    return chosen


@pytest.fixture
def jpeg(photo) -> bytes:
    return jpeg_bytes(photo[:48, :64], quality=20)


def test_import_is_cheap():
    code = "import sys, jpegfix; print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=os.environ | {"PYTHONPATH": str(REPO)}).stdout
    assert out.strip() == "[]"


def test_public_names():
    assert set(jpegfix.__all__) == {"restore", "load", "ImageRestorer", "__version__"}
    assert (Path(jpegfix.__file__).parent / "py.typed").is_file()


def test_a_path_gives_an_upright_pil_image_with_its_metadata(tmp_path, photo, tiny_models):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown a quarter turn clockwise
    path = tmp_path / "a.jpg"
    Image.fromarray(photo[:48, :64]).save(path, quality=20, exif=exif, icc_profile=b"icc-bytes")
    restored = jpegfix.restore(path)
    assert isinstance(restored, Image.Image) and restored.size == (48, 64) and restored.mode == "RGB"
    exif = Image.Exif()
    exif.load(restored.info["exif"])
    assert restored.info["icc_profile"] == b"icc-bytes" and exif[0x0112] == 1
    assert tiny_models == [DEFAULT_TABLE_MODELS[3]]  # the file's tables went to the table-guided model


def test_bytes_give_png_bytes(jpeg, tiny_models):
    restored = jpegfix.restore(jpeg)
    assert isinstance(restored, bytes) and restored.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(restored)) as image:
        assert image.size == (64, 48)
    assert tiny_models == [DEFAULT_TABLE_MODELS[3]]


def test_bytes_come_back_as_the_cli_writes_them_with_all_metadata(photo, tiny_models):
    from jpegfix.jpeg import read_bytes
    from jpegfix.output import encode_png16

    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>Ann</dc:creator></x:xmpmeta>'
    buffer = io.BytesIO()
    Image.fromarray(photo[:48, :64]).save(buffer, "JPEG", quality=20, xmp=xmp, dpi=(300, 300))
    back = read_bytes(jpegfix.restore(buffer.getvalue()))
    assert back.format == "PNG" and back.xmp == xmp and back.dpi == (300.0, 300.0)

    deep = encode_png16(photo[:48, :64].astype(np.uint16) * 257)  # a 16-bit PNG stays one
    back = read_bytes(jpegfix.restore(deep))
    assert back.format == "PNG" and back.bits == 16 and back.pixels.shape == (48, 64, 3)


def test_a_pil_image_opened_from_a_jpeg_keeps_its_tables(jpeg, tiny_models):
    """The same pixels and tables as the file: the same result as restoring the bytes."""
    image = Image.open(io.BytesIO(jpeg))
    restored = jpegfix.restore(image)
    assert isinstance(restored, Image.Image) and restored.size == image.size and restored.mode == "RGB"
    with Image.open(io.BytesIO(jpegfix.restore(jpeg))) as from_bytes:
        assert np.array_equal(np.asarray(restored), np.asarray(from_bytes))
    assert tiny_models == [DEFAULT_TABLE_MODELS[3], DEFAULT_TABLE_MODELS[3]]


def test_a_pil_image_without_jpeg_history_comes_back_as_it_was_unless_a_blind_model_is_asked(photo, tiny_models):
    image = Image.fromarray(photo[:40, :56])
    image.info["dpi"] = (300, 300)
    restored = jpegfix.restore(image)
    assert restored.size == (56, 40) and restored.info["dpi"] == (300, 300)
    assert np.array_equal(np.asarray(restored), photo[:40, :56]) and tiny_models == []
    blind = jpegfix.restore(image, model="cqr")
    assert blind.size == (56, 40) and blind.info["dpi"] == (300, 300)
    assert tiny_models == ["cqr-color-s"]


def test_rgb_array(photo, tiny_models):
    pixels = np.asarray(Image.open(io.BytesIO(jpeg_bytes(photo[:48, :64], quality=20))))
    restored = jpegfix.restore(pixels)
    assert restored.shape == pixels.shape and restored.dtype == np.uint8


def test_grey_arrays_two_and_three_dimensional(grey_photo, tiny_models):
    grey = grey_photo[:40, :48]
    assert jpegfix.restore(grey, model="contrastive").shape == (40, 48)
    assert jpegfix.restore(grey[..., None], model="contrastive").shape == (40, 48, 1)
    assert set(tiny_models) == {"contrastive-gray-s"}


@pytest.mark.parametrize("colours", [1, 3])
def test_alpha_is_passed_through_untouched(photo, colours, tiny_models):
    alpha = np.arange(40 * 56, dtype=np.uint32).reshape(40, 56).astype(np.uint8)
    pixels = np.dstack([photo[:40, :56, :colours], alpha])
    restored = jpegfix.restore(pixels)
    assert restored.shape == pixels.shape and np.array_equal(restored[..., -1], alpha)


def test_quality_steers_table_guided_models_and_is_refused_by_blind_ones(photo, tiny_models):
    pixels = photo[:32, :48]
    assert jpegfix.restore(pixels, quality=20).shape == pixels.shape
    assert tiny_models == [DEFAULT_TABLE_MODELS[3]]
    with pytest.raises(InputError, match="blind model"):
        jpegfix.restore(pixels, model="cqr", quality=20)
    with pytest.raises(ValueError, match="1 to 100"):
        jpegfix.restore(pixels, quality=0)


def test_one_restorer_loads_each_model_once(photo, grey_photo, tiny_models):
    restorer = jpegfix.load("cqr", device="cpu")
    for _ in range(3):
        restorer.restore(photo[:32, :32])
        restorer.restore(grey_photo[:32, :32])
    assert sorted(tiny_models) == ["cqr-color-s", "cqr-gray-s"]


def test_api_and_cli_give_the_same_pixels(tmp_path, photo, tiny_models):
    """One code path: the batch's PNG and the API's array agree for the same file."""
    from jpegfix.batch import RestoreOptions, plan_jobs, restore_files

    source = save_jpeg(tmp_path / "a.jpg", photo[:48, :64], quality=20)
    jobs, _ = plan_jobs([str(source)], tmp_path / "out")
    restore_files(jobs, RestoreOptions())
    with Image.open(tmp_path / "out" / "a.png") as written:
        assert np.array_equal(np.asarray(written), np.asarray(jpegfix.restore(source)))


def test_bad_inputs_are_one_clear_error(photo):
    with pytest.raises(TypeError, match="path, bytes, a PIL image or a numpy array"):
        jpegfix.restore(3.5)
    with pytest.raises(InputError, match="uint8"):
        jpegfix.restore(photo.astype(np.float32))
    with pytest.raises(InputError, match=r"\(H, W\)"):
        jpegfix.restore(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(InputError, match="not an image"):
        jpegfix.restore(b"not an image")


def test_a_model_without_weights_fails_at_load(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="jpegfix download qgcn-color-paper"):
        jpegfix.load("qgcn-color-paper")


def readme_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(tmp_path, monkeypatch):
    """The README's example, as written, with the shipped models on the example photos."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    assert (tmp_path / "coffee_restored.png").is_file()
    with Image.open(io.BytesIO(namespace["png"])) as png:
        assert png.mode == "L" and png.size == (512, 512)
