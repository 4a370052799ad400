import numpy as np
import pytest
import torch

from jpegfix.engine import RestoreOptions, choose_model, plan_jobs, restore_files, restore_pixels
from jpegfix.errors import InputError
from jpegfix.jpeg import read_image
from jpegfix.qmaps import ijg_components

from conftest import save_jpeg, tiny_restorer


def test_tiled_and_whole_image_agree_within_one_level(photo):
    restorer = tiny_restorer()
    pixels = photo[:200, :300]
    components = ijg_components(20, 3)
    whole = restore_pixels(restorer, pixels, components, tile=4096)
    tiled = restore_pixels(restorer, pixels, components, tile=96, overlap=64)
    assert whole.shape == tiled.shape == (200, 300, 3)
    assert np.abs(whole - tiled).max() <= 1 / 255


def test_global_vector_is_computed_once_per_image(photo, monkeypatch):
    restorer = tiny_restorer()
    calls = []
    original = restorer.net.global_vector
    monkeypatch.setattr(restorer.net, "global_vector", lambda x: calls.append(x.shape) or original(x))
    restore_pixels(restorer, photo[:100, :130], ijg_components(30, 3), tile=48, overlap=16)
    assert calls == [torch.Size([1, 3, 100, 130])]


def test_grey_model_and_odd_sizes(grey_photo):
    restorer = tiny_restorer("qgcn-gray-s")
    out = restore_pixels(restorer, grey_photo[:37, :53, None], ijg_components(10, 1))
    assert out.shape == (37, 53, 1) and np.isfinite(out).all()


def test_channel_mismatch_is_an_input_error(photo):
    with pytest.raises(InputError, match="expects 1-channel"):
        restore_pixels(tiny_restorer("qgcn-gray-s"), photo[:32, :32], ijg_components(10, 3))


def test_model_choice(tmp_path, photo, grey_photo):
    jpeg = read_image(save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=30))
    assert choose_model(jpeg, RestoreOptions())[0] == "qgcn-color-s"
    grey = read_image(save_jpeg(tmp_path / "g.jpg", grey_photo[:32, :32], quality=30))
    assert choose_model(grey, RestoreOptions())[0] == "qgcn-gray-s"
    name, components, reason = choose_model(jpeg, RestoreOptions(quality=50))
    assert components[0].table[0, 0] == 16 and "--quality 50" in reason


def test_plan_jobs_mirrors_folders_and_reports_missing(tmp_path, photo):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    save_jpeg(tmp_path / "in" / "a.jpg", photo[:16, :16])
    save_jpeg(tmp_path / "in" / "sub" / "b.jpg", photo[:16, :16])
    jobs, problems = plan_jobs([str(tmp_path / "in"), str(tmp_path / "nope.jpg")], tmp_path / "out", recursive=True, suffix="_x")
    assert sorted(str(j.target.relative_to(tmp_path / "out")) for j in jobs) == ["a_x.png", "sub/b_x.png"]
    assert [p.error for p in problems] == ["no such file or folder"]


def test_colliding_output_names_fail_the_second(tmp_path, photo):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        save_jpeg(tmp_path / folder / "a.jpg", photo[:16, :16])
    jobs, problems = plan_jobs([str(tmp_path / "x/a.jpg"), str(tmp_path / "y/a.jpg")], tmp_path / "out")
    assert len(jobs) == 1 and "collides" in problems[0].error


def test_batch_goes_on_after_a_bad_file_and_never_overwrites_inputs(tmp_path, photo, monkeypatch):
    import jpegfix.engine as engine

    monkeypatch.setattr(engine, "load_restorer", lambda name, device: tiny_restorer(name))
    save_jpeg(tmp_path / "good.jpg", photo[:48, :64], quality=20)
    (tmp_path / "bad.jpg").write_bytes(b"")
    png = tmp_path / "same.png"
    png.write_bytes(b"original")
    jobs, _ = plan_jobs([str(tmp_path / "bad.jpg"), str(tmp_path / "good.jpg"), str(png)], tmp_path)
    results = restore_files(jobs, RestoreOptions(overwrite=True))
    assert [r.status for r in results] == ["failed", "ok", "failed"]
    assert "empty" in results[0].error and "is an input" in results[2].error
    assert png.read_bytes() == b"original"
    assert (tmp_path / "good.png").exists()
