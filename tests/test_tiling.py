import torch

from jpegfix.tiling import run_tiled, tile_starts, tiles


def test_tile_starts_cover_the_image_on_the_grid():
    starts = tile_starts(400, 128, 32)
    assert starts[0] == 0 and starts[-1] == 400 - 128
    assert all(s % 16 == 0 for s in starts)
    assert all(b - a <= 128 - 32 for a, b in zip(starts, starts[1:]))
    assert tile_starts(100, 128, 32) == [0]


def test_weights_sum_to_one_where_tiles_overlap():
    coverage = torch.zeros(160, 224)
    for top, left, weight in tiles(160, 224, 64, 32):
        assert weight.min() > 0
        coverage[top : top + weight.shape[0], left : left + weight.shape[1]] += weight
    # Linear ramps of two neighbours add up to one in their shared band.
    assert torch.allclose(coverage[40:120, 40:180], torch.ones(80, 140), atol=1e-6)


def test_identity_process_is_reproduced_exactly():
    image = torch.rand(3, 96, 160)
    out = run_tiled(lambda boxes: [image[:, t : t + h, l : l + w] for t, l, h, w in boxes], 3, 96, 160, 48, 16)
    assert torch.allclose(out, image, atol=1e-6)
