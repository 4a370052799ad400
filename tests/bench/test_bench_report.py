import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from jpegfix.bench.protocol import BenchResult, BenchSettings, DatasetRun, Failure, ImageScore
from jpegfix.bench.published import PUBLISHED, SOURCES, published_rows
from jpegfix.bench.report import (_nice_ticks, markdown, result_from_json, summarize, table_cells, to_json, write_csv,
                                  write_plot)
from jpegfix.bench.speed import SpeedResult


def fake_result(name="live1_gray", images=2, expected=2, registered=True, qualities=(10, 20)):
    """A finished run: jpeg and one model on ``images`` images; the model fails once."""
    settings = BenchSettings(qualities=qualities)
    run = DatasetRun(name, "y", 1, images, expected, registered)
    for q in qualities:
        for i in range(images):
            base = 27.0 + q / 10 + i
            run.scores.append(ImageScore(name, f"im{i}.png", "jpeg", q, base, 0.80, base - 2, 0.0))
            if (i, q) != (1, 20):
                run.scores.append(ImageScore(name, f"im{i}.png", "model", q, base + 1.5, 0.85, base + 1, 0.2))
    run.failures.append(Failure(name, "im1.png", "model", 20, "boom"))
    speed = [SpeedResult("model", "cpu", 64, 48, 1, 1, 2, [0.1, 0.3], 0.2, 0.01536, 1.2e5, 1000, 400.0, 50.0,
                         "peak RSS", 2)]
    return BenchResult(settings, ["jpeg", "model"], [run], {"encoder": "Pillow x", "torch": "2"}, speed)


def test_published_numbers_carry_sources_and_match_protocols():
    assert all(row.source.key in SOURCES for row in PUBLISHED)
    live1 = {(r.method, r.source.key): r for r in published_rows("live1", "rgb", "4:2:0", [10, 20, 30, 40])}
    assert live1[("jpeg", "contrastive-t3")].scores[10].psnr == 25.69
    assert live1[("fbcnn", "contrastive-t3")].scores[40].psnr == 32.34
    assert live1[("qgcn", "qgcn-t2")].scores[10].psnr == 27.84
    assert published_rows("live1", "rgb", "4:4:4", [10]) == []
    assert published_rows("live1", "y", "4:2:0", [10]) == []  # grey figures are for live1_gray
    gray = {(r.method, r.source.key): r for r in published_rows("live1_gray", "y", "4:2:0", [10, 20, 30, 40])}
    assert [gray[("arcnn", "contrastive-t1")].scores[q].psnr for q in (10, 20, 30, 40)] == [28.96, 31.29, 32.67, 33.61]
    assert [gray[("dncnn3", "contrastive-t1")].scores[q].psnr for q in (10, 20, 30, 40)] == [29.19, 31.59, 32.98, 33.96]
    assert set(gray[("cqr", "cqr-t2")].scores) == {10, 20, 30}
    assert published_rows("live1_gray", "y", "4:2:0", [10], full_set=False) == []
    assert not [r for r in published_rows("bsds500_gray", "y", "4:2:0", [10]) if r.method == "cqr"]


def test_summary_gains_are_paired_per_image_and_published_rows_follow():
    summary = summarize(fake_result())[0]
    jpeg, model = summary.rows[0], summary.rows[1]
    assert jpeg.model == "jpeg" and jpeg.means["QF10"].psnr == pytest.approx(28.5) and jpeg.means["QF10"].gain is None
    assert model.means["QF10"].gain == pytest.approx(1.5) and model.means["QF20"].n == 1
    assert model.means["QF20"].gain == pytest.approx(1.5)  # paired: only the image the model scored
    qgcn = next(r for r in summary.rows if r.model == "qgcn" and r.kind == "published")
    assert qgcn.means["QF10"].gain == pytest.approx(29.74 - 27.77) and qgcn.gain_over == "paper jpeg"
    cqr = next(r for r in summary.rows if r.model == "cqr")
    assert cqr.gain_over == "jpeg" and cqr.means["QF10"].gain == pytest.approx(29.81 - 28.5)
    assert any(note.startswith("our jpeg row minus qgcn-t3's") for note in summary.notes)
    header, body = table_cells(summary, multiline=False)
    assert header == ["model", "QF10", "QF20"]
    assert body[1][2].startswith("30.50* (+1.50)") and body[0][1] == "28.50 / 0.8000 / 26.50"
    assert any(cells[0] == "cqr (paper: cqr-t2) †" for cells in body)
    paper_jpeg = next(r for r in summary.rows if r.model == "jpeg" and r.kind == "published")
    assert all(m.gain is None for m in paper_jpeg.means.values())
    contrastive = next(cells for cells in body if cells[0] == "contrastive (paper: contrastive-t1)")
    assert contrastive[2] == "32.19 (+2.12) / 0.890 / 31.63"  # the paper's 3 decimals kept


def test_partial_runs_show_no_published_rows():
    summary = summarize(fake_result(images=2, expected=29))[0]
    assert all(r.kind == "measured" for r in summary.rows)
    assert "2 of 29 images: published figures not shown" in summary.notes


def test_json_is_strict_and_complete():
    result = fake_result()
    result.datasets[0].scores.append(ImageScore("live1_gray", "same.png", "jpeg", 10, math.inf, 1.0, math.inf, 0.0))
    data = json.loads(json.dumps(to_json(result), allow_nan=False))
    assert data["rows"] == ["jpeg", "model"] and data["settings"]["qualities"] == [10, 20]
    dataset = data["datasets"][0]
    assert dataset["failures"][0]["error"] == "boom"
    model = next(r for r in dataset["rows"] if r["model"] == "model")
    assert model["scores"]["QF20"]["images"] == 1 and model["scores"]["QF20"]["worse"] == 0
    assert data["harm_tolerance_db"] == 0.05 and data["columns"][0] == {"key": "QF10", "quality": 10}
    assert any(r["kind"] == "published" and r["source"] for r in dataset["rows"])
    assert any(image["psnr"] == "inf" for image in data["images"])
    assert data["speed"][0]["megapixels_per_s"] == pytest.approx(0.01536)


def test_json_round_trip_renders_the_same_tables():
    result = fake_result()
    again = result_from_json(json.loads(json.dumps(to_json(result))))
    assert markdown(again) == markdown(result)
    assert to_json(again) == to_json(result)


def test_csv_has_one_row_per_image_model_and_quality(tmp_path):
    write_csv(fake_result(), tmp_path / "out.csv")
    with open(tmp_path / "out.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8  # 4 jpeg + 3 model scores + 1 failure
    failed = [r for r in rows if r["error"]]
    assert failed == [{**failed[0], "image": "im1.png", "model": "model", "quality": "20", "psnr": "", "error": "boom"}]
    assert rows[0]["dataset"] == "live1_gray" and rows[0]["channel"] == "y" and float(rows[0]["psnr"]) == 28.0


def test_markdown_tables_sources_and_speed():
    text = markdown(fake_result())
    assert "### live1_gray: Y (BT.601 luma), 2 images, grey JPEG" in text
    assert "| model | QF10 | QF20 |" in text and "| jpeg | 28.50 / 0.8000 / 26.50 |" in text
    assert "`qgcn-t3`: Li et al." in text and "*qgcn (paper: qgcn-t3)*" in text
    assert "### Speed" in text and "| model | cpu torch fp32 | 64x48 | 0.200 |" in text


def test_plot_writes_a_png_with_quality_and_speed_panels(tmp_path):
    write_plot(fake_result(), tmp_path / "plot.png")
    with Image.open(tmp_path / "plot.png") as image:
        assert image.size == (1520, 430) and image.mode == "RGB"
        assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 10  # not blank
    empty = fake_result()
    empty.speed = []
    empty.datasets = []
    write_plot(empty, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_nice_ticks_cover_the_range():
    assert _nice_ticks(0, 2.3) == [0, 1, 2, 3]
    assert _nice_ticks(10, 40) == [10, 20, 30, 40]
    for low, high in [(-0.2, 3.1), (0.013, 0.4), (1, 1)]:
        ticks = _nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 8


def test_harm_counts_images_made_worse_beyond_tolerance_and_the_worst():
    result = fake_result()
    for image, jpeg, model in (("im2.png", 30.0, 29.6), ("im3.png", 30.0, 29.97)):
        result.datasets[0].scores.append(ImageScore("live1_gray", image, "jpeg", 10, jpeg, 0.8, 29.0, 0.0))
        result.datasets[0].scores.append(ImageScore("live1_gray", image, "model", 10, model, 0.8, 29.0, 0.2,
                                                    psnr_input=40.0))
    summary = summarize(result)[0]
    q10, q20 = summary.rows[1].means["QF10"], summary.rows[1].means["QF20"]
    assert (q10.worse, q10.beyond_tolerance, q10.paired) == (2, 1, 4) and q10.worse_share == 0.5
    assert q10.worst == pytest.approx(-0.4) and q20.worst == pytest.approx(1.5) and q20.worse == 0
    header, body = table_cells(summary)
    assert body[1][1].splitlines()[-2:] == ["worse 2/4, 1 < -0.05", "min -0.40"]
    assert "worse" not in body[0][1]  # the jpeg row has no harm
    text = markdown(result)
    assert "| model | worse 2/4, 1 < -0.05, min -0.40 | worse 0/1, 0 < -0.05, min +1.50 |" in text
    data = json.loads(json.dumps(to_json(result)))
    scores = next(r for r in data["datasets"][0]["rows"] if r["model"] == "model")["scores"]["QF10"]
    assert (scores["worse"], scores["worse_share"], scores["beyond_tolerance"]) == (2, 0.5, 1)
    assert scores["worst"] == pytest.approx(-0.4) and scores["psnr_input_min"] == 40.0


def test_a_clean_input_has_no_gain_and_reports_psnr_against_the_input():
    settings = BenchSettings(qualities=(None,))
    run = DatasetRun("set", "rgb", 3, 2, 0, False)
    for i, change in enumerate((48.0, 41.0)):
        run.scores.append(ImageScore("set", f"im{i}.png", "jpeg", None, math.inf, 1.0, math.inf, 0.0,
                                     psnr_input=math.inf))
        run.scores.append(ImageScore("set", f"im{i}.png", "model", None, change, 0.99, change, 0.1,
                                     psnr_input=change))
    result = BenchResult(settings, ["jpeg", "model"], [run], {}, columns=[("clean", None)])
    summary = summarize(result)[0]
    clean = summary.rows[1].means["clean"]
    assert clean.gain is None and clean.worse is None
    assert (clean.psnr_input, clean.psnr_input_min) == (44.5, 41.0)
    assert table_cells(summary)[1][1][1].splitlines()[-2:] == ["vs input 44.50", "min 41.00"]
    again = result_from_json(json.loads(json.dumps(to_json(result))))
    assert markdown(again) == markdown(result) and again.column_list() == [("clean", None)]
