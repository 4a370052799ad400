import sys

import numpy as np
import pytest

import jpegfix
from jpegfix.bench.cases import (CLEAN, Column, Degradation, ijg_column, jpeg_round_trip, make_input, named_columns,
                                 resize, table_column)
from jpegfix.bench.datasets import resolve_dataset
from jpegfix.bench.protocol import BenchSettings, plan_columns, run_benchmark
from jpegfix.metrics import psnr
from jpegfix.qmaps import IJG_CHROMA, IJG_LUMA, ijg_table

from bench_helpers import FakeRestorer, FakeTableSet, fake_table_sets, make_folder

# Asymmetric (table != its transpose) and not in zigzag order, so a transposed or
# zigzag-scanned write cannot pass for the right one.
CAMERA_LUMA = np.clip(np.add.outer(np.arange(8) * 3, np.arange(8)) + 2, 1, 255)
CAMERA_CHROMA = CAMERA_LUMA.T * 2


@pytest.fixture
def clean():
    """(48, 64, 3) smooth colour image: high JPEG qualities keep it well above 30 dB."""
    y, x = np.mgrid[0:48, 0:64]
    base = 128 + 50 * np.sin(x / 7.0) * np.cos(y / 5.0)
    planes = np.stack([base, base * 0.8 + 30, 200 - base * 0.6], axis=-1)
    return np.clip(planes + np.random.default_rng(1).normal(0, 2, planes.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def table_sets(monkeypatch):
    """A named set ``phones`` of two table pairs, one without a chroma table."""
    module = fake_table_sets({"phones": [FakeTableSet("cam-fine", CAMERA_LUMA, CAMERA_CHROMA),
                                         FakeTableSet("cam-coarse", ijg_table(30, IJG_LUMA) + 1)]})
    monkeypatch.setitem(sys.modules, "jpegfix.table_sets", module)
    monkeypatch.setattr(jpegfix, "table_sets", module, raising=False)
    return module


def test_custom_tables_reach_the_file_in_natural_order(clean):
    assert not np.array_equal(CAMERA_LUMA, CAMERA_LUMA.T)
    decoded, components = jpeg_round_trip(clean, table_column("cam", CAMERA_LUMA, CAMERA_CHROMA), "4:2:0")
    # read_image reads the tables with jpeglib, which returns them in natural order
    assert np.array_equal(components[0].table, CAMERA_LUMA)
    assert np.array_equal(components[1].table, CAMERA_CHROMA) and np.array_equal(components[2].table, CAMERA_CHROMA)
    assert decoded.shape == clean.shape and psnr(clean, decoded) > 30
    _, luma_only = jpeg_round_trip(clean, table_column("cam", CAMERA_LUMA, None), "4:4:4")
    assert np.array_equal(luma_only[1].table, CAMERA_LUMA)  # no chroma table: luma serves chroma


def test_subsampling_422_gives_chroma_blocks_twice_as_wide(clean):
    _, components = jpeg_round_trip(clean, ijg_column(50), "4:2:2")
    assert (components[1].block_height, components[1].block_width) == (8, 16)
    assert np.array_equal(components[1].table, ijg_table(50, IJG_CHROMA))
    assert BenchSettings(subsampling="4:2:2").subsampling == "4:2:2"


def test_table_columns_are_labelled_with_their_nearest_ijg_quality(table_sets):
    columns = named_columns("phones")
    assert [c.key for c in columns] == ["cam-coarse (~QF30)", columns[1].key]
    assert columns[0].quality == 30 and columns[1].key.startswith("cam-fine (~QF")
    assert columns[0].folder == "cam-coarse" and not columns[0].ijg
    with pytest.raises(ValueError, match="one of phones"):
        named_columns("cameras")
    with pytest.raises(ValueError, match="8x8 with entries 1..255"):
        table_column("bad", np.zeros((8, 8)), None)


def test_every_image_is_compressed_with_every_table_of_the_set(tmp_path, table_sets):
    dataset = resolve_dataset(str(make_folder(tmp_path / "set", 2, 3)))
    model = FakeRestorer("same", 3)
    settings = BenchSettings(qualities=(None,), tables="phones")
    assert [c.key for c in plan_columns(settings)][0] == CLEAN
    result = run_benchmark([dataset], [("same", model)], settings)
    run = result.datasets[0]
    # 2 images x 3 columns for jpeg, x 2 table columns for the model; the clean column has no tables to give it
    assert run.failures == [] and len(run.scores) == 2 * 3 + 2 * 2 and len(run.refusals) == 2
    assert [key for key, _ in result.columns] == [CLEAN, "cam-coarse (~QF30)", result.columns[2][0]]
    tables_seen = [calls[1][0].table for calls in model.calls if calls[1] is not None]
    assert any(np.array_equal(t, CAMERA_LUMA) for t in tables_seen)
    record = result.protocol["tables"]["colour 4:2:0"]["cam-coarse (~QF30)"]
    assert record["ijg"] is False and record["luma_quality"] == 30 and result.protocol["table_set"] == "phones"


def test_requality_hands_the_model_the_last_tables(clean):
    once = make_input(clean, ijg_column(90), Degradation(), "4:2:0")
    twice = make_input(clean, ijg_column(10), Degradation(requality=90), "4:2:0")
    assert np.array_equal(twice.components[0].table, ijg_table(90))
    assert np.array_equal(twice.reference, clean)
    # the earlier, coarser compression is still in the pixels
    first = make_input(clean, ijg_column(10), Degradation(), "4:2:0")
    assert psnr(clean, twice.pixels) < psnr(clean, once.pixels) - 5
    assert abs(psnr(clean, twice.pixels) - psnr(clean, first.pixels)) < 1


def test_resize_and_shift_give_pixels_only_and_a_matching_reference(clean):
    resized = make_input(clean, ijg_column(30), Degradation(resize=0.75), "4:2:0")
    assert resized.components is None and resized.pixels.shape == resized.reference.shape == (36, 48, 3)
    assert np.array_equal(resized.reference, resize(clean, 0.75))
    shifted = make_input(clean, ijg_column(30), Degradation(shift=(3, 5)), "4:2:0")
    assert shifted.components is None and np.array_equal(shifted.reference, clean[5:, 3:])
    decoded, _ = jpeg_round_trip(clean, ijg_column(30), "4:2:0")
    assert np.array_equal(shifted.pixels, decoded[5:, 3:])
    both = make_input(clean, ijg_column(30), Degradation(requality=80, shift=(1, 0)), "4:2:0")
    assert both.components is None and both.pixels.shape == (48, 63, 3)
    assert "saved again as JPEG q80" in Degradation(requality=80, shift=(1, 0)).describe()


def test_clean_column_is_the_image_itself(clean):
    case = make_input(clean, ijg_column(None), Degradation(), "4:2:0")
    assert case.components is None and np.array_equal(case.pixels, clean) and np.array_equal(case.reference, clean)
    assert ijg_column(None) == Column(CLEAN, None) and Degradation().none


def test_inputs_without_tables_refuse_table_models_and_feed_blind_ones(tmp_path):
    dataset = resolve_dataset(str(make_folder(tmp_path / "set", 2, 3)))
    table_model = FakeRestorer("needs-tables", 3)
    blind = FakeRestorer("blind", 3, offset=1, needs_tables=False)
    settings = BenchSettings(qualities=(None, 40), degradation=Degradation(shift=(3, 5)))
    result = run_benchmark([dataset], [("needs-tables", table_model), ("blind", blind)], settings)
    run = result.datasets[0]
    assert run.failures == [] and len(run.refusals) == 2 * 2 and table_model.calls == []
    assert {r.column for r in run.refusals} == {"clean", "QF40"}
    assert "needs quantization tables" in run.refusals[0].reason
    assert [c[1] for c in blind.calls] == [None] * 4
    scores = {(s.image, s.model, s.column): s for s in run.scores}
    clean_jpeg = scores[("img0.png", "jpeg", "clean")]
    assert clean_jpeg.psnr == np.inf and clean_jpeg.psnr_input == np.inf
    shifted_blind = scores[("img0.png", "blind", "clean")]
    assert shifted_blind.psnr == shifted_blind.psnr_input < 60  # clean input: output vs clean is output vs input
    from jpegfix.bench.report import summarize

    notes = summarize(result)[0].notes
    assert any(n.startswith("needs-tables refused 4 image(s) (QF40, clean): ") for n in notes)


def test_a_registered_table_model_goes_through_the_engines_choice(tmp_path):
    pytest.importorskip("jpegfix.engine")
    from conftest import tiny_restorer

    dataset = resolve_dataset(str(make_folder(tmp_path / "set", 2, 3)))
    restorer = tiny_restorer("qgcn-color-s")
    result = run_benchmark([dataset], [("qgcn-color-s", restorer)],
                           BenchSettings(qualities=(20,), degradation=Degradation(resize=0.75)))
    run = result.datasets[0]
    scored = [s for s in run.scores if s.model == "qgcn-color-s"]
    # Each image is restored with tables the engine recovered, or refused with its reason; never failed.
    assert run.failures == [] and len(scored) + len(run.refusals) == 2
    assert all("quantization tables" in r.reason for r in run.refusals)


def test_the_default_row_scores_what_restore_picks_per_image(tmp_path, monkeypatch):
    pytest.importorskip("jpegfix.engine")
    import jpegfix.engine as engine
    from conftest import tiny_restorer

    from jpegfix.bench.rows import EngineDefault

    loaded = []
    monkeypatch.setattr(engine, "load_restorer", lambda name, device="auto", **runtime: loaded.append(name) or tiny_restorer(name))
    dataset = resolve_dataset(str(make_folder(tmp_path / "set", 2, 3)))
    result = run_benchmark([dataset], [("default", EngineDefault())],
                           BenchSettings(qualities=(None, 30, 100)))
    run = result.datasets[0]
    assert run.failures == [] and len([s for s in run.scores if s.model == "default"]) == 6
    assert loaded.count(engine.DEFAULT_TABLE_MODELS[3]) == 1  # JPEGs: the table-guided default, loaded once
    q100 = [s for s in run.scores if s.model == "default" and s.quality == 100]
    assert all(s.psnr_input == float("inf") or s.psnr_input > 99 for s in q100)  # q100 is left as decoded


def test_table_models_get_an_earlier_compression_found_under_the_files_tables(monkeypatch):
    pytest.importorskip("jpegfix.engine")
    import jpegfix.engine as engine
    from conftest import tiny_restorer

    from jpegfix.bench.protocol import model_tables
    from jpegfix.qmaps import ijg_components

    last = ijg_components(95, 3, "4:2:0")
    earlier = ijg_components(20, 3, "4:2:0")
    seen = []
    monkeypatch.setattr(engine, "tables_under_jpeg",
                        lambda pixels, components: seen.append(components) or (earlier, "earlier compression"))
    pixels = np.zeros((16, 16, 3), np.uint8)
    assert model_tables(tiny_restorer("qgcn-color-s"), pixels, last) is earlier
    assert seen == [last]
