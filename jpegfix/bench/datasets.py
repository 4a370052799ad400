"""Benchmark data sets: a registry of the standard sets with their exact files, plus any folder.

A registered set is looked for as ``<root>/<folder>`` in these roots, in order: the
``--data-root`` argument, ``$JPEGFIX_DATA``, the user cache (``$XDG_CACHE_HOME/jpegfix/data``,
by default ``~/.cache/jpegfix/data``), and ``../shared/data/bench`` relative to the current
folder when that exists (the layout of a jpegfix development checkout and its CI). The first
root holding every expected file wins; an incomplete folder is never used, because averages
over a different image list are not comparable with published ones.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jpegfix.errors import DataError
from jpegfix.metrics import rgb_to_y

DATA_ENV = "JPEGFIX_DATA"
SHARED_ROOT = Path("../shared/data/bench")
IMAGE_SUFFIXES = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L"}

_LIVE1 = (
    "bikes building2 buildings caps carnivaldolls cemetry churchandcapitol coinsinfountain "
    "dancers flowersonih35 house lighthouse2 lighthouse3 manfishing monarch ocean paintedhouse "
    "parrots plane rapids sailing1 sailing2 sailing3 sailing4 statue stream studentsculpture "
    "woman womanhat"
).split()
_CLASSIC5 = "baboon barbara boats lena peppers".split()
_BSDS500_TEST = (
    "2018 3063 5096 6046 8068 10081 14085 14092 15011 15062 16004 16068 17067 20069 23050 28083 "
    "29030 33044 35028 35049 36046 41006 41029 41085 41096 43033 43051 45000 48017 48025 49024 "
    "51084 61034 64061 65084 69000 69007 69022 70011 70090 71076 71099 77062 78098 79073 80085 "
    "80090 81066 81090 81095 87015 92014 94095 97010 100007 100039 100099 101027 101084 102062 "
    "103006 103029 103078 104010 104055 105027 106005 106047 107014 107045 107072 108004 108036 "
    "108069 109055 112056 112090 117025 118015 118031 118072 120003 120093 123057 128035 130014 "
    "130066 134049 134067 140006 140088 141012 141048 145059 145079 146074 147077 147080 156054 "
    "157032 157087 159002 159022 160006 160067 161045 163004 163096 164046 168084 175083 176051 "
    "179084 181021 183066 185092 187058 187099 188025 189006 189013 189029 189096 196027 196040 "
    "196062 196088 198087 201080 202000 206062 206097 207038 207049 208078 209021 217013 217090 "
    "220003 223004 223060 225022 226022 226033 226043 226060 228076 230063 230098 232076 235098 "
    "238025 243095 246009 247003 247012 249021 250047 250087 253016 253092 257098 258089 259060 "
    "267036 268048 268074 277053 279005 281017 285022 288024 289011 290035 296028 296058 302022 "
    "306051 306052 309040 317043 326025 326085 334025 335088 335094 344010 346016 347031 365072 "
    "368037 372019 376086 384022 384089 385022 388006 388018 388067 393035"
).split()


@dataclass(frozen=True)
class DatasetSpec:
    """A standard benchmark set: where its files live and how the benchmark reads them."""

    name: str
    """What users type after ``--dataset``."""
    folder: str
    """Folder name under a data root."""
    files: tuple[str, ...]
    """Every expected file name, in benchmark order."""
    channels: int
    """1: scored as grey (luma) images; 3: colour."""
    luma_of_colour: bool = False
    """The files are colour; the set is their MATLAB BT.601 luma (:func:`rgb_to_y`)."""
    description: str = ""
    scale: float = 1.0
    """Shrink every image by this factor on loading (Lanczos), as training shrinks images stored
    as JPEGs (``jpeg_scale``): BSDS500's references are quality-95 JPEGs, whose own 8x8
    blocking would otherwise be the "clean" truth at high qualities."""


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("live1", "live1", tuple(f"{n}.bmp" for n in _LIVE1), 3,
                    description="LIVE1, 29 lossless colour images"),
        DatasetSpec("live1_gray", "live1_gray", tuple(f"{n}.png" for n in _LIVE1), 1,
                    description="LIVE1 as MATLAB BT.601 luma, 29 PNG"),
        DatasetSpec("classic5", "classic5", tuple(f"{n}.bmp" for n in _CLASSIC5), 1,
                    description="Classic5, 5 grey 512x512 images (full-range grey)"),
        DatasetSpec("bsds500", "bsds500_test", tuple(f"{n}.jpg" for n in _BSDS500_TEST), 3,
                    description="BSDS500 test set, 200 colour images (quality-95 JPEG originals)"),
        DatasetSpec("bsds500_gray", "bsds500_test", tuple(f"{n}.jpg" for n in _BSDS500_TEST), 1,
                    luma_of_colour=True,
                    description="BSDS500 test set as MATLAB BT.601 luma, derived from bsds500"),
        DatasetSpec("bsds500_half", "bsds500_test", tuple(f"{n}.jpg" for n in _BSDS500_TEST), 3, scale=0.5,
                    description="BSDS500 test set at half size (240x160): references without the "
                                "originals' quality-95 blocking, for scoring high qualities"),
        DatasetSpec("bsds500_half_gray", "bsds500_test", tuple(f"{n}.jpg" for n in _BSDS500_TEST), 1,
                    luma_of_colour=True, scale=0.5,
                    description="bsds500_half as MATLAB BT.601 luma"),
    )
}
"""The registered sets by name."""


@dataclass(frozen=True)
class Dataset:
    """A data set found on disk, ready to be read image by image."""

    name: str
    """Registry name, or the folder path as given for an ad-hoc set."""
    folder: Path
    paths: tuple[Path, ...]
    """The images the run uses (after ``limit``), in benchmark order."""
    channels: int
    """1 or 3: the channels of the arrays :meth:`load` returns."""
    luma_of_colour: bool = False
    expected: int = 0
    """Files in the full set (0 for an ad-hoc folder)."""
    registered: bool = False
    scale: float = 1.0
    """:attr:`DatasetSpec.scale`."""

    @property
    def default_channel(self) -> str:
        """Where scores are computed unless told: ``rgb`` for colour sets, ``y`` for grey."""
        return "rgb" if self.channels == 3 else "y"

    def load(self, path: Path) -> np.ndarray:
        """(H, W, C) uint8 pixels of one image, C = :attr:`channels`.

        Raises:
            DataError: the file cannot be decoded.
        """
        try:
            with Image.open(path) as image:
                if self.scale != 1:
                    size = (max(1, round(image.width * self.scale)), max(1, round(image.height * self.scale)))
                    image = image.convert("RGB" if self.channels == 3 or self.luma_of_colour else "L")
                    image = image.resize(size, Image.Resampling.LANCZOS)
                if self.luma_of_colour:
                    return rgb_to_y(np.asarray(image.convert("RGB"), dtype=np.uint8))[..., None]
                if self.channels == 1:
                    return _grey_pixels(image)[..., None]
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read {path.name}: {error}") from None


def cache_root() -> Path:
    """The per-user data cache: ``$XDG_CACHE_HOME/jpegfix/data`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jpegfix" / "data"


def data_roots(data_root: str | Path | None = None) -> list[tuple[str, Path]]:
    """(label, folder) of every root searched, in order."""
    roots: list[tuple[str, Path]] = []
    if data_root:
        roots.append(("--data-root", Path(data_root).expanduser()))
    if os.environ.get(DATA_ENV):
        roots.append((DATA_ENV, Path(os.environ[DATA_ENV]).expanduser()))
    roots.append(("cache", cache_root()))
    if SHARED_ROOT.is_dir():
        roots.append((str(SHARED_ROOT), SHARED_ROOT.resolve()))
    return roots


def resolve_dataset(name: str, data_root: str | Path | None = None, *, limit: int | None = None) -> Dataset:
    """Find data set ``name`` (a registry name or a folder of images).

    ``limit`` keeps the first N images, for quick runs.

    Raises:
        DataError: unknown name, a set found nowhere or only incomplete (the one-line message
            lists every folder searched and how to provide the files), an empty folder.
    """
    if name in DATASETS:
        dataset = _find_registered(DATASETS[name], data_root)
    elif Path(name).expanduser().is_dir():
        dataset = _folder_dataset(Path(name).expanduser())
    elif "/" in name or os.sep in name or name.startswith("."):
        raise DataError(f"data set folder not found: {name}")
    else:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}, or a folder of images")
    if limit is not None and limit > 0:
        dataset = dataclasses.replace(dataset, paths=dataset.paths[:limit])
    return dataset


def _find_registered(spec: DatasetSpec, data_root: str | Path | None) -> Dataset:
    looked: list[str] = []
    for label, root in data_roots(data_root):
        folder = root / spec.folder
        if not folder.is_dir():
            looked.append(f"{folder} ({label})")
            continue
        missing = [f for f in spec.files if not (folder / f).is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            looked.append(f"{folder} ({label}: incomplete, missing {shown})")
            continue
        return Dataset(spec.name, folder, tuple(folder / f for f in spec.files), spec.channels,
                       spec.luma_of_colour, len(spec.files), registered=True, scale=spec.scale)
    raise DataError(
        f"data set {spec.name} ({len(spec.files)} files in a folder named {spec.folder}) not found; "
        f"looked in: {'; '.join(looked)}; put the files in one of these folders, or pass "
        f"--data-root DIR or set {DATA_ENV}=DIR where DIR/{spec.folder} holds them"
    )


def _folder_dataset(folder: Path) -> Dataset:
    paths = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
    if not paths:
        raise DataError(f"no images in data set folder: {folder}")
    modes = set()
    for path in paths:
        try:
            with Image.open(path) as image:
                modes.add(image.mode)
        except (OSError, ValueError):
            continue  # reported when the image is read during the run
    channels = 1 if modes and modes <= GREY_MODES else 3
    return Dataset(str(folder), folder, paths, channels)


def _grey_pixels(image: Image.Image) -> np.ndarray:
    """(H, W) uint8 of a grey image; 16-bit grey is scaled to 8 bits, colour converted to L."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        wide = np.asarray(image, dtype=np.int64)
        scale = 257.0 if wide.max() > 255 else 1.0
        return np.clip(np.round(wide / scale), 0, 255).astype(np.uint8)
    return np.asarray(image.convert("L"), dtype=np.uint8)
