"""Key image for segmentation QC: labels over the magnitude and the susceptibility map.

One PNG, two rows (magnitude with filled labels; susceptibility with label outlines) by three
orthogonal planes through the centre of the labelled deep grey matter, so a reader can judge
at a glance whether the nuclei were found. Planes follow the acquisition's voxel axes; each
edge carries its patient direction (R/L, A/P, S/I) from the affine, so an oblique or flipped
acquisition is never misread. A legend names every structure shown, a colour bar gives the
susceptibility window in ppb, and a visit whose QC failed carries a red "QC FAILED" banner
with the reason, so an image that reaches a PACS can never pass for a valid result.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402 - backend must be chosen first
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, to_rgba  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from monitor.segment.structures import LABEL_NAMES  # noqa: E402

__all__ = ["CHI_WINDOW_PPB", "LABEL_COLOURS", "edge_letters", "write_key_image"]

CHI_WINDOW_PPB = (-100.0, 200.0)
LABEL_COLOURS: dict[str, str] = {
    "thalamus_left": "#1a53ff",  # blue
    "thalamus_right": "#3cf0ff",  # cyan
    "caudate_left": "#28c800",  # green
    "caudate_right": "#00ff96",  # spring green
    "putamen_left": "#ff9900",  # orange
    "putamen_right": "#ff1a1a",  # red
    "globus_pallidus_left": "#ff00e6",  # magenta
    "globus_pallidus_right": "#ffff33",  # yellow
    "lateral_ventricle_left": "#ff6fa5",  # pink
    "lateral_ventricle_right": "#9933ff",  # violet
}
"""Overlay colour of every label: saturated and bright, so each stands out from the greyscale
image and from the others (neighbouring nuclei of one side are far apart in hue); no grey,
white, black or brown, which would vanish against the magnitude or the susceptibility map."""
_RAS_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))
"""Patient direction at the low and the high end of each RAS+ axis."""
_PLANE_AXES = ((0, 1), (0, 2), (1, 2))
"""Voxel axes shown horizontally and vertically in each of the three planes."""


def _planes(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Three planes through `centre`, transposed so the first listed voxel axis runs across."""
    x, y, z = centre
    return [volume[:, :, z].T, volume[:, y, :].T, volume[x, :, :].T]


def _aspects(voxel_mm: tuple[float, float, float]) -> list[float]:
    return [voxel_mm[1] / voxel_mm[0], voxel_mm[2] / voxel_mm[0], voxel_mm[2] / voxel_mm[1]]


def edge_letters(affine_ras: np.ndarray, voxel_axis: int) -> tuple[str, str]:
    """Patient directions at the start and the end of a voxel axis, e.g. ("R", "L").

    The dominant RAS component of the axis decides; an oblique axis gets its nearest letter.
    """
    direction = np.asarray(affine_ras, dtype=float)[:3, voxel_axis]
    dominant = int(np.argmax(np.abs(direction)))
    low, high = _RAS_LETTERS[dominant]
    return (high, low) if direction[dominant] < 0 else (low, high)


def _mark_edges(ax: plt.Axes, affine_ras: np.ndarray, plane: int) -> None:
    across, up = _PLANE_AXES[plane]
    (left, right), (bottom, top) = edge_letters(affine_ras, across), edge_letters(affine_ras, up)
    style = dict(color="yellow", fontsize=11, fontweight="bold", transform=ax.transAxes)
    ax.text(0.01, 0.5, left, ha="left", va="center", **style)
    ax.text(0.99, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.01, bottom, ha="center", va="bottom", **style)
    ax.text(0.5, 0.99, top, ha="center", va="top", **style)


def _legend_handles(labels: np.ndarray, colours: np.ndarray) -> list[Patch]:
    present = sorted(int(label) for label in np.unique(labels) if label in LABEL_NAMES)
    return [
        Patch(color=colours[label], label=LABEL_NAMES[label].replace("_", " ")) for label in present
    ]


def write_key_image(  # noqa: PLR0913 - the images and geometry to show
    path: Path,
    magnitude: np.ndarray,
    chi_ppm: np.ndarray,
    labels: np.ndarray,
    voxel_mm: tuple[float, float, float],
    title: str = "",
    *,
    affine_ras: np.ndarray | None = None,
    qc_failure: str | None = None,
) -> Path:
    """Write the key image PNG to `path` (parents created) and return the path.

    Without `affine_ras` the planes carry no direction letters (the caller knows no geometry);
    `qc_failure`, the reason segmentation QC withheld the values, adds the red banner.
    """
    labelled = np.argwhere(labels > 0)
    centre = (
        tuple(int(c) for c in labelled.mean(axis=0).round())
        if len(labelled)
        else tuple(n // 2 for n in labels.shape)
    )
    colours = np.zeros((max(LABEL_NAMES) + 1, 4))  # label 0 (background): transparent
    for label, name in LABEL_NAMES.items():
        colours[label] = to_rgba(LABEL_COLOURS[name])
    label_map = ListedColormap(colours)
    bright = float(np.percentile(magnitude, 99.5)) or 1.0

    figure, axes = plt.subplots(2, 3, figsize=(12, 8.6), facecolor="black")
    rows = [
        (_planes(magnitude, centre), dict(cmap="gray", vmin=0, vmax=bright)),
        (
            _planes(chi_ppm * 1000.0, centre),
            dict(cmap="gray", vmin=CHI_WINDOW_PPB[0], vmax=CHI_WINDOW_PPB[1]),
        ),
    ]
    label_planes = _planes(labels, centre)
    chi_image = None
    for row, (planes, style) in enumerate(rows):
        for column, (plane, aspect) in enumerate(zip(planes, _aspects(voxel_mm), strict=True)):
            ax = axes[row, column]
            shown_image = ax.imshow(plane, origin="lower", aspect=aspect, **style)
            chi_image = shown_image if row == 1 else chi_image
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
            if affine_ras is not None:
                _mark_edges(ax, affine_ras, column)
            ax.set_axis_off()
    bar = figure.colorbar(chi_image, ax=axes[1, :].tolist(), fraction=0.02, pad=0.01)
    bar.set_label("susceptibility (ppb, whole-brain referenced)", color="white", fontsize=9)
    bar.ax.yaxis.set_tick_params(color="white", labelcolor="white", labelsize=8)
    handles = _legend_handles(labels, colours)
    if handles:
        figure.legend(
            handles=handles,
            loc="lower center",
            ncol=min(len(handles), 5),
            fontsize=9,
            frameon=False,
            labelcolor="white",
        )
    figure.suptitle(title, color="white")
    if qc_failure:
        figure.text(
            0.5,
            0.5,
            textwrap.fill(f"QC FAILED: {qc_failure}", width=80),
            ha="center",
            va="center",
            fontsize=15,
            fontweight="bold",
            color="white",
            bbox=dict(facecolor="red", alpha=0.85, edgecolor="none", pad=8),
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80, facecolor="black")
    plt.close(figure)
    return path
