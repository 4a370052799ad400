import numpy as np
import pytest
import torch
from PIL import Image

from jpegfix.batch import RestoreOptions, plan_jobs, restore_files
from jpegfix.engine import DEFAULT_BLIND_MODELS, DEFAULT_TABLE_MODELS, choose_model, restore_pixels
from jpegfix.errors import InputError
from jpegfix.jpeg import read_image
from jpegfix.qmaps import ijg_components

from conftest import jpeg_bytes, save_jpeg, tiny_restorer


def test_tiled_and_whole_image_agree_within_one_level(photo):
    restorer = tiny_restorer()
    pixels = photo[:200, :300]
    components = ijg_components(20, 3)
    whole = restore_pixels(restorer, pixels, components, tile=4096)
    tiled = restore_pixels(restorer, pixels, components, tile=96, overlap=64)
    assert whole.shape == tiled.shape == (200, 300, 3)
    assert np.abs(whole - tiled).max() <= 1 / 255


@pytest.mark.parametrize("name", ["contrastive-color-s", "cqr-color-s", "one-to-many-color-s"])
def test_blind_and_sampling_models_tile_within_one_level(name, photo):
    restorer = tiny_restorer(name)
    last = restorer.net.upsample if restorer.samples else restorer.net.tail[0]
    torch.nn.init.normal_(last.weight, std=0.1)  # untrained, these networks return their input
    components = ijg_components(20, 3) if restorer.needs_tables else None
    pixels = photo[:160, :224]
    whole = restore_pixels(restorer, pixels, components, tile=4096, seed=3)
    tiled = restore_pixels(restorer, pixels, components, tile=96, overlap=32, seed=3)
    assert whole.shape == tiled.shape == (160, 224, 3)
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
    assert choose_model(jpeg, RestoreOptions())[0] == DEFAULT_TABLE_MODELS[3]
    grey = read_image(save_jpeg(tmp_path / "g.jpg", grey_photo[:32, :32], quality=30))
    assert choose_model(grey, RestoreOptions())[0] == DEFAULT_TABLE_MODELS[1]
    name, components, reason = choose_model(jpeg, RestoreOptions(quality=50))
    assert components[0].table[0, 0] == 16 and "--quality 50" in reason


def zeroed_table_jpeg(path, pixels):
    """A JPEG whose first luma table entry is 0: Pillow decodes it, its tables fail validation."""
    data = bytearray(jpeg_bytes(pixels, quality=30))
    data[data.index(b"\xff\xdb") + 5] = 0  # marker (2) + length (2) + precision/id (1)
    path.write_bytes(bytes(data))
    return path


def test_routing_tables_to_qgcn_and_no_tables_to_the_blind_model(tmp_path, photo, grey_photo):
    jpeg = read_image(save_jpeg(tmp_path / "a.jpg", photo[:32, :32], quality=30))
    name, components, reason = choose_model(jpeg, RestoreOptions())
    assert name == DEFAULT_TABLE_MODELS[3] and components is not None and reason.startswith("table-guided default")

    # Pixels without tables and without JPEG history (never compressed here): left as decoded
    # by default, restored blind when a blind model is asked for.
    Image.fromarray(photo[:32, :32]).save(tmp_path / "a.png")
    name, components, reason = choose_model(read_image(tmp_path / "a.png"), RestoreOptions())
    assert (name, components) == (None, None)
    assert reason.startswith("left as decoded: PNG file has no JPEG quantization tables, and its pixels show no")
    assert choose_model(read_image(tmp_path / "a.png"), RestoreOptions(model="cqr"))[0] == "cqr-color-s"
    Image.fromarray(grey_photo[:32, :32]).save(tmp_path / "g.png")
    assert choose_model(read_image(tmp_path / "g.png"), RestoreOptions())[0] is None
    assert choose_model(read_image(tmp_path / "g.png"), RestoreOptions(model="contrastive"))[0] == "contrastive-gray-s"
    for suffix in ("webp", "tiff"):
        Image.fromarray(photo[:32, :32]).save(tmp_path / f"a.{suffix}", **({"lossless": True} if suffix == "webp" else {}))
        name, _, reason = choose_model(read_image(tmp_path / f"a.{suffix}"), RestoreOptions())
        assert name is None and "has no JPEG quantization tables" in reason

    broken = read_image(zeroed_table_jpeg(tmp_path / "z.jpg", photo[:32, :32]))
    name, components, reason = choose_model(broken, RestoreOptions())
    assert (name, components) == (DEFAULT_BLIND_MODELS[3], None) and "zero entry" in reason

    # --quality gives a PNG tables, so it goes to QGCN; --model overrides either way.
    assert choose_model(read_image(tmp_path / "a.png"), RestoreOptions(quality=20))[0] == DEFAULT_TABLE_MODELS[3]
    name, components, reason = choose_model(jpeg, RestoreOptions(model="contrastive-color-s"))
    assert (name, components, reason) == ("contrastive-color-s", None, "--model, blind model (tables not used)")
    with pytest.raises(InputError, match=f"--quality Q .* or use --model {DEFAULT_BLIND_MODELS[3]}"):
        choose_model(read_image(tmp_path / "a.png"), RestoreOptions(model="qgcn-color-s"))
    with pytest.raises(InputError, match=f"try --model {DEFAULT_BLIND_MODELS[1]}"):
        choose_model(read_image(tmp_path / "g.png"), RestoreOptions(model="contrastive-color-s"))


def test_batch_restores_jpegs_with_tables_and_passes_clean_pngs_through(tmp_path, photo, monkeypatch):
    import jpegfix.engine as engine

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))
    save_jpeg(tmp_path / "a.jpg", photo[:48, :64], quality=20)
    Image.fromarray(photo[:40, :56]).save(tmp_path / "b.png")
    zeroed_table_jpeg(tmp_path / "c.jpg", photo[:32, :48])
    jobs, _ = plan_jobs([str(tmp_path)], tmp_path / "out")
    results = {r.source.split("/")[-1]: r for r in restore_files(jobs, RestoreOptions())}
    assert {k: (r.status, r.model) for k, r in results.items()} == {
        "a.jpg": ("ok", DEFAULT_TABLE_MODELS[3]), "b.png": ("clean", None), "c.jpg": ("ok", DEFAULT_BLIND_MODELS[3])}
    with Image.open(tmp_path / "out" / "b.png") as out:
        assert np.array_equal(np.asarray(out), photo[:40, :56])


def test_plan_jobs_mirrors_folders_and_reports_missing(tmp_path, photo):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    save_jpeg(tmp_path / "in" / "a.jpg", photo[:16, :16])
    save_jpeg(tmp_path / "in" / "sub" / "b.jpg", photo[:16, :16])
    jobs, problems = plan_jobs([str(tmp_path / "in"), str(tmp_path / "nope.jpg")], tmp_path / "out", recursive=True, suffix="_x")
    assert sorted(str(j.target.relative_to(tmp_path / "out")) for j in jobs) == ["a_x.png", "sub/b_x.png"]
    assert [p.error for p in problems] == ["no such file or folder"]


def test_files_of_one_name_in_two_folders_are_mirrored_apart(tmp_path, photo):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        save_jpeg(tmp_path / folder / "a.jpg", photo[:16, :16])
    jobs, problems = plan_jobs([str(tmp_path / "x/a.jpg"), str(tmp_path / "y/a.jpg")], tmp_path / "out")
    assert problems == [] and [str(j.target.relative_to(tmp_path / "out")) for j in jobs] == ["x/a.png", "y/a.png"]


def test_batch_goes_on_after_a_bad_file_and_never_overwrites_inputs(tmp_path, photo, monkeypatch):
    import jpegfix.engine as engine

    monkeypatch.setattr(engine, "load_restorer", lambda name, device, **runtime: tiny_restorer(name))
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


def test_projection_holds_a_restoration_inside_the_files_intervals(photo):
    from jpegfix.dct import block_dct, jpeg_planes

    restorer = tiny_restorer()
    torch.nn.init.normal_(restorer.net.tail[-1].weight, std=0.05)  # an untrained net that moves pixels
    # Kept off 0 and 255: clipping the result to the pixel range after the projection may
    # push a saturated block's coefficients back out.
    pixels = np.ascontiguousarray((photo[:64, :96] * 0.8 + 25).astype(np.uint8))
    from jpegfix.data import jpeg_roundtrip

    decoded = jpeg_roundtrip(pixels, 95, "4:4:4")
    components = ijg_components(95, 3, "4:4:4")
    free = restore_pixels(restorer, decoded, components, project=False)
    held = restore_pixels(restorer, decoded, components)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))[None]).float()
    luma = lambda a: block_dct(jpeg_planes(as_tensor(a), 1)[0])
    table = torch.from_numpy(components[0].table).float()
    k = torch.round(luma(decoded / 255) / table)
    outside = lambda a: float(((luma(a) / table - k).abs() > 0.5 + 1e-3).float().mean())
    assert outside(free) > 0.2 and outside(held) == 0


def test_ensemble_of_rotations_and_flips(photo):
    restorer = tiny_restorer()
    torch.nn.init.normal_(restorer.net.tail[-1].weight, std=0.1)
    pixels = np.ascontiguousarray(photo[:40, :56])  # not square, not on the 16-pixel grid
    components = ijg_components(20, 3, "4:2:2")
    single = restore_pixels(restorer, pixels, components, project=False)
    averaged = restore_pixels(restorer, pixels, components, project=False, ensemble=True)
    assert averaged.shape == single.shape == (40, 56, 3)
    assert 0 < np.abs(averaged - single).mean() < 0.1  # a different, nearby answer
    # An identity network is unchanged by the ensemble: every orientation maps back exactly.
    torch.nn.init.zeros_(restorer.net.tail[-1].weight)
    torch.nn.init.zeros_(restorer.net.tail[-1].bias)
    assert np.abs(restore_pixels(restorer, pixels, components, project=False, ensemble=True) - pixels / 255).max() < 1e-6

def test_png_copy_of_a_jpeg_goes_to_qgcn_with_recovered_tables(tmp_path, photo):
    from jpegfix.data import jpeg_roundtrip

    Image.fromarray(jpeg_roundtrip(photo[:192, :256], 30)[3:, 5:]).save(tmp_path / "copy.png")
    name, components, reason = choose_model(read_image(tmp_path / "copy.png"), RestoreOptions())
    assert name == DEFAULT_TABLE_MODELS[3] and components[0].origin == (3, 5)
    assert (components[0].table == ijg_components(30, 3)[0].table).all()
    assert reason.startswith("table-guided default, tables recovered from pixels (grid offset 3, 5; confidence")
    # A forced blind model does not look for tables; a clean photo is left as decoded.
    assert choose_model(read_image(tmp_path / "copy.png"), RestoreOptions(model="cqr"))[1] is None
    Image.fromarray(photo[:192, :256]).save(tmp_path / "clean.png")
    assert choose_model(read_image(tmp_path / "clean.png"), RestoreOptions())[:2] == (None, None)


def test_jpeg_with_an_earlier_compression_is_restored_with_the_earlier_tables(tmp_path, photo):
    from jpegfix.data import jpeg_roundtrip

    source = save_jpeg(tmp_path / "twice.jpg", jpeg_roundtrip(photo[:192, :256], 20), quality=90)
    name, components, reason = choose_model(read_image(source), RestoreOptions())
    assert name == DEFAULT_TABLE_MODELS[3] and (components[0].table == ijg_components(20, 3)[0].table).all()
    assert "earlier compression at quality 20 found under the file's quality-90 tables" in reason
    once = save_jpeg(tmp_path / "once.jpg", photo[:192, :256], quality=90)
    assert choose_model(read_image(once), RestoreOptions())[2] == "table-guided default, JPEG quantization tables from the file"


def test_recovered_grid_is_moved_to_the_origin_before_the_network(photo, monkeypatch):
    from jpegfix.jpeg import ComponentTable

    restorer = tiny_restorer()
    seen = []
    original = restorer.prepare
    monkeypatch.setattr(restorer, "prepare", lambda image: seen.append(image.clone()) or original(image))
    pixels = photo[:61, :83]
    luma, chroma = ijg_components(30, 3)[:2]
    components = [ComponentTable(luma.table, 8, 8, (3, 5)),
                  ComponentTable(chroma.table, 16, 16, (11, 13)), ComponentTable(chroma.table, 16, 16, (11, 13))]
    out = restore_pixels(restorer, pixels, components)
    assert out.shape == (61, 83, 3)
    # 3 rows and 5 columns added on top and left: the 16-pixel chroma grid now starts at (0, 0).
    assert seen[0].shape == (1, 3, 64, 88)
    inner = (seen[0][0, :, 3:, 5:].permute(1, 2, 0).numpy() * 255).round()
    np.testing.assert_array_equal(inner, pixels)


def test_tables_of_quality_98_or_finer_are_left_as_decoded(photo):
    restorer = tiny_restorer()
    torch.nn.init.normal_(restorer.net.tail[-1].weight, std=0.05)
    pixels = np.ascontiguousarray(photo[:48, :64])
    for quality in (98, 100):
        out = restore_pixels(restorer, pixels, ijg_components(quality, 3))
        assert np.array_equal(np.round(out * 255).astype(np.uint8), pixels)
    assert not np.array_equal(np.round(restore_pixels(restorer, pixels, ijg_components(97, 3)) * 255), pixels)
