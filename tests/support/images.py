"""Reading the pictures we produce, as a reader would see them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def red_pixel_count(path: Path) -> int:
    """Pixels of a saturated red (the "QC FAILED" banner), counted on the RGB rendering."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    return int(np.count_nonzero((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)))
