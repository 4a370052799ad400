import dataclasses

import numpy as np
import pytest
from PIL import Image

from jpegfix.bench.datasets import DATASETS, resolve_dataset
from jpegfix.errors import DataError
from jpegfix.metrics import rgb_to_y

from bench_helpers import SHARED_BENCH, make_folder


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No JPEGFIX_DATA, an empty cache, and a working folder without ../shared."""
    monkeypatch.delenv("JPEGFIX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    work = tmp_path / "work" / "repo"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    return tmp_path


def fake_classic5(root):
    folder = root / "classic5"
    folder.mkdir(parents=True)
    for name in DATASETS["classic5"].files:
        Image.fromarray(np.full((24, 20), 100, np.uint8)).save(folder / name)
    return folder


def test_registry_lists_the_standard_sets_with_their_files():
    counts = {name: len(spec.files) for name, spec in DATASETS.items()}
    assert counts == {"live1": 29, "live1_gray": 29, "classic5": 5, "bsds500": 200, "bsds500_gray": 200,
                      "bsds500_half": 200, "bsds500_half_gray": 200}
    assert DATASETS["bsds500"].folder == "bsds500_test" and DATASETS["live1"].channels == 3
    assert DATASETS["live1_gray"].files[0] == "bikes.png" and DATASETS["classic5"].channels == 1
    assert all(len(set(spec.files)) == len(spec.files) for spec in DATASETS.values())


def test_data_root_then_environment_then_cache(isolated, monkeypatch):
    fake_classic5(isolated / "env")
    monkeypatch.setenv("JPEGFIX_DATA", str(isolated / "env"))
    assert resolve_dataset("classic5").folder == isolated / "env" / "classic5"
    fake_classic5(isolated / "explicit")
    found = resolve_dataset("classic5", isolated / "explicit", limit=2)
    assert found.folder == isolated / "explicit" / "classic5"
    assert [p.name for p in found.paths] == ["baboon.bmp", "barbara.bmp"] and found.expected == 5
    assert found.channels == 1 and found.default_channel == "y" and found.registered
    monkeypatch.delenv("JPEGFIX_DATA")
    fake_classic5(isolated / "cache" / "jpegfix" / "data")
    assert resolve_dataset("classic5").folder == isolated / "cache" / "jpegfix" / "data" / "classic5"


def test_shared_folder_next_to_the_checkout_is_found(isolated):
    fake_classic5(isolated / "work" / "shared" / "data" / "bench")
    assert resolve_dataset("classic5").folder.name == "classic5"


def test_missing_set_message_lists_every_folder_searched(isolated, monkeypatch):
    monkeypatch.setenv("JPEGFIX_DATA", str(isolated / "env"))
    with pytest.raises(DataError) as error:
        resolve_dataset("live1", isolated / "root")
    message = str(error.value)
    assert "\n" not in message and "live1 (29 files" in message
    for where in ("root/live1 (--data-root)", "env/live1 (JPEGFIX_DATA)", "jpegfix/data/live1 (cache)", "--data-root DIR"):
        assert where in message


def test_incomplete_folder_is_refused_and_named(isolated):
    folder = fake_classic5(isolated / "root")
    (folder / "lena.bmp").unlink()
    with pytest.raises(DataError, match="incomplete, missing lena.bmp"):
        resolve_dataset("classic5", isolated / "root")


def test_unknown_name_and_missing_folder(isolated):
    with pytest.raises(DataError, match="unknown data set 'live2'; known: live1"):
        resolve_dataset("live2")
    with pytest.raises(DataError, match="folder not found"):
        resolve_dataset(str(isolated / "nope" / "x"))


def test_any_folder_is_a_data_set_with_inferred_channels(tmp_path):
    colour = resolve_dataset(str(make_folder(tmp_path / "colour", 3, 3)))
    grey = resolve_dataset(str(make_folder(tmp_path / "grey", 2, 1)))
    assert (colour.channels, len(colour.paths), colour.expected, colour.registered) == (3, 3, 0, False)
    assert grey.channels == 1 and grey.load(grey.paths[0]).shape == (40, 56, 1)
    assert colour.load(colour.paths[1]).shape == (48, 56, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        resolve_dataset(str(tmp_path / "empty"))


def test_unreadable_image_raises_data_error(tmp_path):
    folder = make_folder(tmp_path / "set", 1, 3)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    dataset = resolve_dataset(str(folder))
    with pytest.raises(DataError, match="broken.png"):
        dataset.load(folder / "broken.png")


@pytest.mark.skipif(not SHARED_BENCH.is_dir(), reason="needs ../shared/data/bench")
def test_shared_sets_are_complete_and_gray_sets_are_matlab_luma():
    for name, spec in DATASETS.items():
        found = resolve_dataset(name, SHARED_BENCH)
        assert len(found.paths) == len(spec.files)
    live1 = resolve_dataset("live1", SHARED_BENCH, limit=1)
    gray = resolve_dataset("live1_gray", SHARED_BENCH, limit=1)
    np.testing.assert_array_equal(rgb_to_y(live1.load(live1.paths[0])), gray.load(gray.paths[0])[..., 0])
    bsds = resolve_dataset("bsds500_gray", SHARED_BENCH, limit=1)
    assert bsds.load(bsds.paths[0]).shape in ((321, 481, 1), (481, 321, 1))
    half = resolve_dataset("bsds500_half", SHARED_BENCH, limit=1)
    half_gray = resolve_dataset("bsds500_half_gray", SHARED_BENCH, limit=1)
    assert half.load(half.paths[0]).shape in ((160, 240, 3), (240, 160, 3))
    np.testing.assert_array_equal(rgb_to_y(half.load(half.paths[0])), half_gray.load(half_gray.paths[0])[..., 0])


def test_a_scaled_set_is_shrunk_on_loading(tmp_path):
    folder = make_folder(tmp_path / "set", 1, 3)
    dataset = dataclasses.replace(resolve_dataset(str(folder)), scale=0.5)
    full = resolve_dataset(str(folder)).load(dataset.paths[0])
    assert dataset.load(dataset.paths[0]).shape == (full.shape[0] // 2, full.shape[1] // 2, 3)
