"""Published scores of QGCN, CQR, the contrastive method, FBCNN, ARCNN, DnCNN-3 and plain JPEG.

Every figure is copied from a table of a paper in ``../shared/papers/`` and keeps its source.
Entries are keyed by our data set names; a figure is shown beside ours only where the
protocol matches: the same image set, scores on RGB for colour sets (Pillow / OpenCV JPEG
with 4:2:0 subsampling, as all these papers used) or on MATLAB BT.601 luma for grey sets.
Where a source also reports plain JPEG, the report compares that row with our own ``jpeg``
row, which exposes residual protocol differences (QGCN's colour JPEG row, for instance, is
about 0.1 dB below the one FBCNN and the contrastive paper report for the same images).

Left out on purpose: CQR's BSDS500 figures (its test set is all 500 BSDS images, ours the
200 test images) and the ARCNN/DnCNN columns of QGCN's Table III (retrained by the QGCN
authors, not the released models we measure).
"""

from __future__ import annotations

from dataclasses import dataclass

COLOUR_SUBSAMPLING = "4:2:0"


@dataclass(frozen=True)
class Source:
    key: str
    citation: str
    """Paper and table."""
    note: str = ""


@dataclass(frozen=True)
class PublishedScore:
    psnr: float | None
    ssim: float | None
    psnr_b: float | None


@dataclass(frozen=True)
class PublishedRow:
    """One method's published scores on one data set, by JPEG quality."""

    method: str
    """Row label: ``jpeg``, ``qgcn``, ``cqr``, ``contrastive``, ``fbcnn``, ``arcnn``, ``dncnn3``."""
    dataset: str
    channel: str
    """``rgb`` or ``y``."""
    source: Source
    scores: dict[int, PublishedScore]


SOURCES = {
    s.key: s
    for s in (
        Source("qgcn-t2", "Li et al., Learning a Single Model with a Wide Range of Quality Factors for JPEG "
               "Image Artifacts Removal (QGCN), Table II (colour, PIL encoder)",
               "QGCN's JPEG row is ~0.1 dB below FBCNN's for the same images; its PSNR-B is far lower"),
        Source("qgcn-t3", "Li et al., QGCN, Table III (grey, Y channel)",
               "its JPEG SSIM is 0.013-0.018 above ours and the contrastive paper's; PSNR and PSNR-B agree"),
        Source("cqr-t2", "Wang et al., JPEG Artifacts Removal via Compression Quality Ranker-Guided Networks "
               "(CQR), IJCAI-PRICAI 2020, Table 2 (Y channel)"),
        Source("contrastive-t1", "Wang et al., JPEG Artifacts Removal via Contrastive Representation Learning, "
               "ECCV 2022, Table 1 (grey)",
               "ARCNN/DnCNN LIVE1 PSNR/SSIM equal the figures in shared/peers/README.md"),
        Source("contrastive-t3", "Wang et al., Contrastive Representation Learning, ECCV 2022, Table 3 (colour, RGB)",
               "FBCNN's LIVE1 figures equal those in shared/NOTES.md (Jiang et al., ICCV 2021)"),
    )
}

# (method, dataset, channel, source key, {quality: (PSNR, SSIM, PSNR-B)})
_TABLE: list[tuple[str, str, str, str, dict[int, tuple[float | None, float | None, float | None]]]] = [
    # QGCN Table II, colour.
    ("jpeg", "live1", "rgb", "qgcn-t2", {10: (25.60, 0.7454, 21.03), 20: (27.96, 0.8288, 23.20), 30: (29.25, 0.8642, 24.56),
                                         40: (30.16, 0.8846, 25.61), 50: (30.91, 0.8990, 26.52)}),
    ("qgcn", "live1", "rgb", "qgcn-t2", {10: (27.84, 0.8182, 27.01), 20: (30.16, 0.8831, 28.87), 30: (31.49, 0.9093, 29.94),
                                         40: (32.39, 0.9236, 30.75), 50: (33.12, 0.9334, 31.43)}),
    ("jpeg", "bsds500", "rgb", "qgcn-t2", {10: (25.75, 0.7545, 20.73), 20: (28.11, 0.8402, 22.80), 30: (29.45, 0.8762, 24.11),
                                           40: (30.40, 0.8966, 25.07), 50: (31.19, 0.9111, 25.98)}),
    ("qgcn", "bsds500", "rgb", "qgcn-t2", {10: (27.90, 0.8160, 26.79), 20: (30.20, 0.8831, 28.32), 30: (31.51, 0.9101, 29.22),
                                           40: (32.42, 0.9251, 29.85), 50: (33.18, 0.9358, 30.52)}),
    # QGCN Table III, grey.
    ("jpeg", "live1_gray", "y", "qgcn-t3", {10: (27.77, 0.7905, 25.33), 20: (30.07, 0.8683, 27.57), 30: (31.41, 0.9000, 28.92),
                                            40: (32.35, 0.9173, 29.96), 50: (33.16, 0.9295, 30.86)}),
    ("qgcn", "live1_gray", "y", "qgcn-t3", {10: (29.74, 0.8399, 29.40), 20: (32.11, 0.9017, 31.56), 30: (33.53, 0.9265, 32.81),
                                            40: (34.50, 0.9397, 33.71), 50: (35.32, 0.9488, 34.46)}),
    ("jpeg", "bsds500_gray", "y", "qgcn-t3", {10: (27.80, 0.7875, 25.10), 20: (30.05, 0.8671, 27.22), 30: (31.37, 0.8994, 28.53),
                                              40: (32.30, 0.9171, 29.49), 50: (33.10, 0.9296, 30.38)}),
    ("qgcn", "bsds500_gray", "y", "qgcn-t3", {10: (29.65, 0.8365, 29.21), 20: (32.01, 0.8990, 31.19), 30: (33.36, 0.9247, 32.33),
                                              40: (34.32, 0.9383, 33.12), 50: (35.14, 0.9480, 33.85)}),
    # CQR Table 2, Y channel (qualities 10-30 only).
    ("cqr", "classic5", "y", "cqr-t2", {10: (29.92, 0.837, 29.71), 20: (32.89, 0.886, 32.41), 30: (33.31, 0.893, 32.97)}),
    ("cqr", "live1_gray", "y", "cqr-t2", {10: (29.81, 0.810, 29.59), 20: (32.04, 0.891, 31.77), 30: (33.57, 0.912, 32.81)}),
    # Contrastive Table 1, grey.
    ("jpeg", "classic5", "y", "contrastive-t1", {10: (27.82, 0.760, 25.21), 20: (30.12, 0.834, 27.50),
                                                 30: (31.48, 0.867, 28.94), 40: (32.43, 0.885, 29.92)}),
    ("arcnn", "classic5", "y", "contrastive-t1", {10: (29.03, 0.793, 28.76), 20: (31.15, 0.852, 30.59),
                                                  30: (32.51, 0.881, 31.98), 40: (33.32, 0.895, 32.79)}),
    ("dncnn3", "classic5", "y", "contrastive-t1", {10: (29.40, 0.803, 29.13), 20: (31.63, 0.861, 31.19),
                                                   30: (32.91, 0.886, 32.38), 40: (33.77, 0.900, 33.23)}),
    ("fbcnn", "classic5", "y", "contrastive-t1", {10: (30.12, 0.822, 29.80), 20: (32.31, 0.872, 31.74),
                                                  30: (33.54, 0.894, 32.78), 40: (34.35, 0.907, 33.48)}),
    ("contrastive", "classic5", "y", "contrastive-t1", {10: (30.16, 0.822, 29.85), 20: (32.37, 0.873, 31.84),
                                                        30: (33.60, 0.895, 32.89), 40: (34.43, 0.908, 33.58)}),
    ("jpeg", "live1_gray", "y", "contrastive-t1", {10: (27.77, 0.773, 25.33), 20: (30.07, 0.851, 27.57),
                                                   30: (31.41, 0.885, 28.92), 40: (32.35, 0.904, 29.96)}),
    ("arcnn", "live1_gray", "y", "contrastive-t1", {10: (28.96, 0.808, 28.68), 20: (31.29, 0.873, 30.76),
                                                    30: (32.67, 0.904, 32.14), 40: (33.61, 0.920, 33.11)}),
    ("dncnn3", "live1_gray", "y", "contrastive-t1", {10: (29.19, 0.812, 28.90), 20: (31.59, 0.880, 31.07),
                                                     30: (32.98, 0.909, 32.34), 40: (33.96, 0.925, 33.28)}),
    ("fbcnn", "live1_gray", "y", "contrastive-t1", {10: (29.75, 0.827, 29.40), 20: (32.13, 0.889, 31.57),
                                                    30: (33.54, 0.916, 32.83), 40: (34.53, 0.931, 33.74)}),
    ("contrastive", "live1_gray", "y", "contrastive-t1", {10: (29.80, 0.827, 29.44), 20: (32.19, 0.890, 31.63),
                                                          30: (33.62, 0.918, 32.91), 40: (34.62, 0.931, 33.84)}),
    ("jpeg", "bsds500_gray", "y", "contrastive-t1", {10: (27.80, 0.768, 25.10), 20: (30.05, 0.849, 27.22),
                                                     30: (31.37, 0.884, 28.53), 40: (32.30, 0.903, 29.49)}),
    ("arcnn", "bsds500_gray", "y", "contrastive-t1", {10: (29.10, 0.804, 28.73), 20: (31.28, 0.870, 30.55),
                                                      30: (32.67, 0.902, 31.94), 40: (33.55, 0.918, 32.78)}),
    ("dncnn3", "bsds500_gray", "y", "contrastive-t1", {10: (29.21, 0.809, 28.80), 20: (31.53, 0.878, 30.79),
                                                       30: (32.90, 0.907, 31.97), 40: (33.85, 0.923, 32.80)}),
    ("fbcnn", "bsds500_gray", "y", "contrastive-t1", {10: (29.67, 0.821, 29.22), 20: (32.00, 0.885, 31.19),
                                                      30: (33.37, 0.913, 32.32), 40: (34.33, 0.928, 33.10)}),
    ("contrastive", "bsds500_gray", "y", "contrastive-t1", {10: (29.70, 0.822, 29.27), 20: (32.06, 0.886, 31.27),
                                                            30: (33.45, 0.914, 32.41), 40: (34.42, 0.929, 33.22)}),
    # Contrastive Table 3, colour (RGB).
    ("jpeg", "live1", "rgb", "contrastive-t3", {10: (25.69, 0.743, 24.20), 20: (28.06, 0.826, 26.49),
                                                30: (29.37, 0.861, 27.84), 40: (30.28, 0.882, 28.84)}),
    ("fbcnn", "live1", "rgb", "contrastive-t3", {10: (27.77, 0.803, 27.51), 20: (30.11, 0.868, 29.70),
                                                 30: (31.43, 0.897, 30.92), 40: (32.34, 0.913, 31.80)}),
    ("contrastive", "live1", "rgb", "contrastive-t3", {10: (27.80, 0.805, 27.57), 20: (30.23, 0.872, 29.85),
                                                       30: (31.58, 0.900, 31.13), 40: (32.53, 0.916, 32.04)}),
    ("jpeg", "bsds500", "rgb", "contrastive-t3", {10: (25.84, 0.741, 24.13), 20: (28.21, 0.827, 26.37),
                                                  30: (29.57, 0.865, 27.72), 40: (30.52, 0.887, 28.69)}),
    ("fbcnn", "bsds500", "rgb", "contrastive-t3", {10: (27.85, 0.799, 27.52), 20: (30.14, 0.867, 29.56),
                                                   30: (31.45, 0.897, 30.72), 40: (32.36, 0.913, 31.52)}),
    ("contrastive", "bsds500", "rgb", "contrastive-t3", {10: (27.91, 0.803, 27.59), 20: (30.31, 0.872, 29.74),
                                                         30: (31.69, 0.901, 30.96), 40: (32.66, 0.918, 31.82)}),
]

PUBLISHED: tuple[PublishedRow, ...] = tuple(
    PublishedRow(method, dataset, channel, SOURCES[key], {q: PublishedScore(*v) for q, v in scores.items()})
    for method, dataset, channel, key, scores in _TABLE
)


def published_rows(dataset: str, channel: str, subsampling: str, qualities: list[int] | tuple[int, ...],
                   *, full_set: bool = True) -> list[PublishedRow]:
    """Published rows comparable with a run on ``dataset`` (registry name) scored on ``channel``.

    Colour figures need RGB scores and 4:2:0 subsampling; grey figures need a grey set (its
    Y channel). A run limited to part of the set (``full_set=False``) matches nothing. Rows
    keep only the requested qualities and are dropped when none remain.
    """
    if not full_set:
        return []
    rows = []
    for row in PUBLISHED:
        if row.dataset != dataset or row.channel != channel:
            continue
        if row.channel == "rgb" and subsampling != COLOUR_SUBSAMPLING:
            continue
        scores = {q: s for q, s in row.scores.items() if q in qualities}
        if scores:
            rows.append(PublishedRow(row.method, row.dataset, row.channel, row.source, scores))
    return rows


def published_jpeg(row: PublishedRow) -> PublishedRow | None:
    """The plain-JPEG row of the same source table and data set, if the source has one."""
    for other in PUBLISHED:
        if other.method == "jpeg" and other.source == row.source and other.dataset == row.dataset:
            return other
    return None
