import numpy as np
import torch

from jpegfix.bench.double_jpeg import double_compress, measure_double_jpeg
from jpegfix.data import jpeg_roundtrip

from conftest import tiny_restorer


def test_double_compression_shifts_the_grid(photo):
    clean, twice = double_compress(photo[:64, :80], 10, 50, shift=(3, 5))
    assert clean.shape == twice.shape == (61, 75, 3)
    once_aligned = jpeg_roundtrip(np.ascontiguousarray(photo[3:64, 5:80]), 50)
    assert not np.array_equal(twice, once_aligned)  # the first compression left its mark


def test_measurement_compares_blind_and_table_guided(photo):
    blind = tiny_restorer("contrastive-color-s")
    torch.nn.init.normal_(blind.net.tail[0].weight, std=0.01)
    rows = measure_double_jpeg(
        [photo[:64, :96]], blind=blind, tables=tiny_restorer("qgcn-color-s"),
        cases=((10, 30), (40, 20)),
    )
    assert [(r.first, r.second) for r in rows] == [(10, 30), (40, 20)]
    assert set(rows[0].psnr) == {"jpeg", "tables", "tables --quality min", "blind"}
    assert all(np.isfinite(v) for r in rows for v in r.psnr.values()) and rows[0].best != "jpeg"
