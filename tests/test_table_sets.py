import jpeglib
import numpy as np
import pytest
from PIL import Image

from jpegfix.errors import JpegfixError, UnknownTableSetError
from jpegfix.table_sets import ALL, KINDS, NAMES, named

SETS = {s.name: s for s in ALL}


def _tables(s):
    return [("luma", s.luma)] + ([("chroma", s.chroma)] if s.chroma is not None else [])


def test_names_unique_and_enough_sets():
    assert len(SETS) == len(ALL)
    assert len(ALL) >= 30


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.name)
def test_set_is_a_plausible_natural_order_table(s):
    assert s.kind in KINDS
    assert s.source.strip()
    for _, table in _tables(s):
        assert table.shape == (8, 8)
        # 8-bit (baseline) steps: Pillow writes only these, and every source here was clamped to baseline.
        assert table.min() >= 1 and table.max() <= 255
        # Natural order: DC is no coarser than the highest vertical frequencies; a zigzag
        # table read as natural order puts mid frequencies in the last row and often fails this.
        assert table[0, 0] <= table[7].mean()


def test_tables_are_read_only():
    with pytest.raises(ValueError):
        ALL[0].luma[0, 0] = 1


def test_named_subsets_follow_kinds():
    assert [s.name for s in named("realworld")] == [s.name for s in ALL]
    for subset, kinds in NAMES.items():
        assert all(s.kind in kinds for s in named(subset))
    assert len(named("cameras")) >= 10 and len(named("editors")) >= 5 and named("encoders")


def test_named_unknown_is_one_clear_error():
    with pytest.raises(UnknownTableSetError, match="unknown table set 'camera'; did you mean 'cameras'") as info:
        named("camera")
    assert isinstance(info.value, JpegfixError) and "\n" not in str(info.value)


def test_annex_k_at_quality_50_is_the_standard_table():
    # ITU-T T.81 Annex K, Table K.1: the first row and DC read straight from the standard.
    luma = SETS["mozjpeg-annex-k-q50"].luma
    assert luma[0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
    assert SETS["mozjpeg-annex-k-q50"].chroma[0, 0] == 17


def test_ijg_scaled_set_matches_pillow_quality(tmp_path):
    # Pillow's quality=75 runs libjpeg's jpeg_set_quality on Annex K: same tables as our scaled set.
    path_tables = _roundtrip(lambda im, path: im.save(path, quality=75), tmp_path)
    assert np.array_equal(path_tables[0], SETS["mozjpeg-annex-k-q75"].luma)
    assert np.array_equal(path_tables[1], SETS["mozjpeg-annex-k-q75"].chroma)


def _roundtrip(save, folder):
    """Save a small colour image with ``save`` and read back the Y and Cb tables with jpeglib."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    path = folder / "t.jpg"
    save(image, path)
    jpeg = jpeglib.read_dct(str(path))
    return [jpeg.qt[i] for i in jpeg.quant_tbl_no[:2]]


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.name)
def test_pillow_writes_the_tables_in_natural_order(s, tmp_path):
    written = _roundtrip(lambda im, path: im.save(path, qtables=s.pillow_qtables(), subsampling=0), tmp_path)
    assert np.array_equal(written[0], s.luma)
    assert np.array_equal(written[1], s.luma if s.chroma is None else s.chroma)
