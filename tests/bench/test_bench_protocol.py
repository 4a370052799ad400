import numpy as np
import pytest
from PIL import Image

from jpegfix.bench.datasets import resolve_dataset
from jpegfix.bench.cases import ijg_column, jpeg_round_trip
from jpegfix.bench.protocol import BenchSettings, restore_with, run_benchmark, score
from jpegfix.metrics import psnr, rgb_to_y
from jpegfix.qmaps import ijg_table

from bench_helpers import FakeRestorer, make_folder


@pytest.fixture
def colour_set(tmp_path):
    return resolve_dataset(str(make_folder(tmp_path / "colour", 3, 3)))


@pytest.fixture
def grey_set(tmp_path):
    return resolve_dataset(str(make_folder(tmp_path / "grey", 2, 1)))


def test_jpeg_row_scores_pillow_round_trip(colour_set):
    result = run_benchmark([colour_set], [("jpeg", None)], BenchSettings(qualities=(10, 50)))
    run = result.datasets[0]
    assert (run.channel, run.images, run.failures) == ("rgb", 3, [])
    assert len(run.scores) == 3 * 2 and {s.model for s in run.scores} == {"jpeg"}
    clean = colour_set.load(colour_set.paths[0])
    decoded, components = jpeg_round_trip(clean, ijg_column(10), "4:2:0")
    first = next(s for s in run.scores if s.image == "img0.png" and s.quality == 10)
    assert first.psnr == pytest.approx(psnr(clean, decoded)) and first.column == "QF10"
    assert np.array_equal(components[0].table, ijg_table(10)) and len(components) == 3
    assert components[1].block_height == components[1].block_width == 16
    q10 = [s.psnr for s in run.scores if s.quality == 10]
    q50 = [s.psnr for s in run.scores if s.quality == 50]
    assert np.mean(q50) > np.mean(q10)


def test_models_get_ijg_tables_and_identity_matches_jpeg(colour_set):
    identity = FakeRestorer("same", 3)
    result = run_benchmark([colour_set], [("jpeg", None), ("same", identity)],
                           BenchSettings(qualities=(20,), subsampling="4:4:4"))
    scores = {(s.image, s.model): s for s in result.datasets[0].scores}
    for path in colour_set.paths:
        assert scores[(path.name, "same")].psnr == scores[(path.name, "jpeg")].psnr
    components = identity.calls[0][1]
    assert len(components) == 3 and np.array_equal(components[0].table, ijg_table(20))
    assert components[1].block_height == 8  # 4:4:4 chroma covers 8x8 pixels
    assert result.rows == ["jpeg", "same"]


def test_grey_model_on_colour_set_restores_luma_only(colour_set):
    identity = FakeRestorer("grey-id", 1)
    brighter = FakeRestorer("grey-plus", 1, offset=10)
    result = run_benchmark([colour_set], [("grey-id", identity), ("grey-plus", brighter)], BenchSettings(qualities=(30,)))
    run = result.datasets[0]
    assert run.luma_only == ["grey-id", "grey-plus"] and run.failures == []
    scores = {(s.image, s.model): s.psnr for s in run.scores}
    assert all(scores[(p.name, "grey-id")] == scores[(p.name, "jpeg")] for p in colour_set.paths)
    decoded, components = jpeg_round_trip(colour_set.load(colour_set.paths[0]), ijg_column(30), "4:2:0")
    lifted = restore_with(brighter, decoded, components)
    assert np.array_equal(brighter.calls[-1][1][0].table, ijg_table(30)) and len(brighter.calls[-1][1]) == 1
    # +10 on studio-range luma is +10 * 255/219 on R, G and B alike; chroma unchanged
    unclipped = (decoded > 20) & (decoded < 230)
    assert np.abs(lifted.astype(int) - decoded - 11.64)[unclipped].max() <= 0.5 + 1e-9
    luma_change = rgb_to_y(lifted).astype(int) - rgb_to_y(decoded)
    assert np.median(luma_change) == 10


def test_a_methods_grey_model_gives_way_to_its_colour_sibling(colour_set, grey_set):
    rows = [("m-color-s", FakeRestorer("m-color-s", 3)), ("m-gray-s", FakeRestorer("m-gray-s", 1))]
    colour_run, grey_run = run_benchmark([colour_set, grey_set], rows, BenchSettings(qualities=(30,))).datasets
    assert colour_run.skipped == {"m-gray-s": "grey model on a colour set (m-color-s runs here)"}
    assert grey_run.skipped == {"m-color-s": "colour model on a grey set"}
    assert {s.model for s in colour_run.scores} == {"jpeg", "m-color-s"}
    assert {s.model for s in grey_run.scores} == {"jpeg", "m-gray-s"}


def test_method_names_stand_for_their_cpu_size_models():
    from jpegfix.bench.rows import plan_rows

    names = [r.name for r in plan_rows(["contrastive", "qgcn-color-s"], None, auto_peers=False)]
    assert names == ["jpeg", "contrastive-color-s", "contrastive-gray-s", "qgcn-color-s"]


def test_colour_model_is_skipped_on_grey_sets_and_y_scores_for_grey(grey_set):
    colour = FakeRestorer("colour", 3)
    result = run_benchmark([grey_set], [("colour", colour)], BenchSettings(qualities=(10,), channel="rgb"))
    run = result.datasets[0]
    assert run.channel == "y" and run.skipped == {"colour": "colour model on a grey set"}
    assert {s.model for s in run.scores} == {"jpeg"} and colour.calls == []


def test_channel_y_scores_colour_sets_on_luma(colour_set):
    result = run_benchmark([colour_set], [], BenchSettings(qualities=(10,), channel="y"))
    clean = colour_set.load(colour_set.paths[0])
    decoded, _ = jpeg_round_trip(clean, ijg_column(10), "4:2:0")
    assert result.datasets[0].channel == "y"
    assert result.datasets[0].scores[0].psnr == pytest.approx(psnr(rgb_to_y(clean), rgb_to_y(decoded)))
    assert score(clean, decoded, "y")[0] == pytest.approx(psnr(rgb_to_y(clean), rgb_to_y(decoded)))


def test_failures_are_recorded_and_the_run_goes_on(tmp_path):
    folder = make_folder(tmp_path / "set", 3, 3)
    (folder / "img9.png").write_bytes(b"not a png")
    dataset = resolve_dataset(str(folder))
    flaky = FakeRestorer("flaky", 3, fail_on={(48, 56)})  # img1 is 48 rows high
    events = []
    result = run_benchmark([dataset], [("flaky", flaky)], BenchSettings(qualities=(10, 20)), events.append)
    run = result.datasets[0]
    failed = {(f.image, f.model, f.quality) for f in run.failures}
    assert failed == {("img9.png", "", None), ("img1.png", "flaky", 10), ("img1.png", "flaky", 20)}
    assert "synthetic failure" in run.failures[1].error or "synthetic failure" in run.failures[0].error
    assert len([s for s in run.scores if s.model == "flaky"]) == 2 * 2
    assert len([s for s in run.scores if s.model == "jpeg"]) == 3 * 2
    progress = [e for e in events if e.done >= 0]
    assert progress[-1].done == progress[-1].total == 4 * 2
    assert sum(e.failure is not None for e in events) == 3


def test_protocol_record_and_saved_images(tmp_path, colour_set, grey_set):
    model = FakeRestorer("same", 3)
    settings = BenchSettings(qualities=(40,), save_images=tmp_path / "saved")
    result = run_benchmark([colour_set, grey_set], [("same", model)], settings)
    protocol = result.protocol
    assert protocol["encoder"].startswith("Pillow ") and protocol["subsampling"] == "4:2:0"
    assert protocol["tables"]["colour 4:2:0"]["QF40"]["ijg"] is True
    grey = protocol["tables"]["grey"]["QF40"]
    assert grey["ijg"] is True and grey["luma"] == ijg_table(40).tolist() and grey["luma_quality"] == 40
    assert "Yim" in protocol["metrics"]["psnr_b"] and protocol["torch"]
    assert protocol["models"]["same"]["card"] == {"name": "same", "path": "/nowhere", "score": 1.5}
    assert protocol["models"]["same"]["device"] == "cpu"
    saved = tmp_path / "saved" / "colour" / "same" / "q40" / "img0.png"
    with Image.open(saved) as image:
        assert image.size == (56, 40)
    assert (tmp_path / "saved" / "grey" / "jpeg" / "q40" / "img1.png").exists()


def test_settings_reject_bad_values():
    for bad in ({"qualities": (0,)}, {"qualities": (101,)}, {"qualities": ()}, {"subsampling": "4:1:1"},
                {"channel": "cb"}, {"tables": "phones", "qualities": (50,)}):
        with pytest.raises(ValueError):
            BenchSettings(**bad)


def test_real_restorer_contract_runs_through_the_protocol(colour_set):
    pytest.importorskip("jpegfix.engine")
    from conftest import tiny_restorer

    restorer = tiny_restorer("qgcn-color-s")
    result = run_benchmark([colour_set], [("qgcn-color-s", restorer)], BenchSettings(qualities=(10,)))
    run = result.datasets[0]
    assert run.failures == [] and len([s for s in run.scores if s.model == "qgcn-color-s"]) == 3


def test_test_time_options_reach_jpegfix_models_and_not_peers(colour_set, monkeypatch):
    from conftest import tiny_restorer

    import jpegfix.engine as engine

    restorer, seen = tiny_restorer("qgcn-color-s"), []
    real = engine.restore_uint8
    monkeypatch.setattr(engine, "restore_uint8", lambda *a, **k: seen.append(k) or real(*a, **k))
    settings = BenchSettings(qualities=(10,), project=False, ensemble=True)
    result = run_benchmark([colour_set], [("qgcn-color-s", restorer), ("fake", FakeRestorer("fake", 3))], settings)
    assert result.datasets[0].failures == [] and seen[0] == {"project": False, "ensemble": True}
    assert result.protocol["test_time"] == {"projection": False, "ensemble": True}
