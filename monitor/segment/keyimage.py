"""Key image for segmentation QC: labels over the magnitude and the susceptibility map.

One PNG, two rows (magnitude with filled labels; susceptibility with label outlines) by three
orthogonal planes through the centre of the labelled deep grey matter, so a reader can judge
at a glance whether the nuclei were found. Planes follow the acquisition's voxel axes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402 - backend must be chosen first
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from monitor.segment.structures import LABEL_NAMES  # noqa: E402

CHI_WINDOW_PPB = (-100.0, 200.0)


def _planes(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Three planes through `centre`, transposed so the first voxel axis runs left-right."""
    x, y, z = centre
    return [volume[:, :, z].T, volume[:, y, :].T, volume[x, :, :].T]


def _aspects(voxel_mm: tuple[float, float, float]) -> list[float]:
    return [voxel_mm[1] / voxel_mm[0], voxel_mm[2] / voxel_mm[0], voxel_mm[2] / voxel_mm[1]]


def write_key_image(  # noqa: PLR0913 - the images and geometry to show
    path: Path,
    magnitude: np.ndarray,
    chi_ppm: np.ndarray,
    labels: np.ndarray,
    voxel_mm: tuple[float, float, float],
    title: str = "",
) -> Path:
    """Write the key image PNG to `path` (parents created) and return the path."""
    labelled = np.argwhere(labels > 0)
    centre = (
        tuple(int(c) for c in labelled.mean(axis=0).round())
        if len(labelled)
        else tuple(n // 2 for n in labels.shape)
    )
    colours = plt.get_cmap("tab10")(np.arange(max(LABEL_NAMES) + 1) % 10)
    colours[0] = (0, 0, 0, 0)
    label_map = ListedColormap(colours)
    bright = float(np.percentile(magnitude, 99.5)) or 1.0

    figure, axes = plt.subplots(2, 3, figsize=(12, 8), facecolor="black")
    rows = [
        (_planes(magnitude, centre), dict(cmap="gray", vmin=0, vmax=bright)),
        (
            _planes(chi_ppm * 1000.0, centre),
            dict(cmap="gray", vmin=CHI_WINDOW_PPB[0], vmax=CHI_WINDOW_PPB[1]),
        ),
    ]
    label_planes = _planes(labels, centre)
    for row, (planes, style) in enumerate(rows):
        for column, (plane, aspect) in enumerate(zip(planes, _aspects(voxel_mm), strict=True)):
            ax = axes[row, column]
            ax.imshow(plane, origin="lower", aspect=aspect, **style)
            overlay = label_planes[column]
            if row == 0:
                shown = np.ma.masked_equal(overlay, 0)
                ax.imshow(
                    shown,
                    origin="lower",
                    aspect=aspect,
                    cmap=label_map,
                    alpha=0.45,
                    vmin=0,
                    vmax=len(colours) - 1,
                    interpolation="nearest",
                )
            else:
                for label in np.unique(overlay[overlay > 0]):
                    ax.contour(
                        overlay == label, levels=[0.5], colors=[colours[label]], linewidths=0.8
                    )
            ax.set_axis_off()
    axes[1, 0].set_title(
        f"chi window {CHI_WINDOW_PPB[0]:.0f}..{CHI_WINDOW_PPB[1]:.0f} ppb",
        color="white",
        fontsize=9,
    )
    figure.suptitle(title, color="white")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80, facecolor="black")
    plt.close(figure)
    return path
