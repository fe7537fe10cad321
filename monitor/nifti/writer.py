"""Write a reconstruction result as NIfTI maps plus a JSON record, crash-safely.

Each file is written under a temporary name in the output folder, fsync'd and renamed, so an
interrupted run never leaves a half-written map that a later step would take for a whole one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from monitor.errors import MonitorError
from monitor.types import QSMResult

CHI_FILE = "chi_ppm.nii.gz"
MASK_FILE = "mask.nii.gz"
QC_FILE = "qc.json"


class OutputFolderError(MonitorError, ValueError):
    """The output folder cannot be created or written to (the user's choice of folder)."""


def ensure_writable_folder(out_dir: Path) -> None:
    """Create `out_dir` and prove a file can be written there, before any long work.

    A reconstruction takes minutes on a large grid; finding out only afterwards that the
    folder is read-only (or a file, or on a full disk) loses that work.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=out_dir, prefix=".tmp-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise _unwritable(out_dir, exc) from None


def _unwritable(out_dir: Path, exc: OSError) -> OutputFolderError:
    return OutputFolderError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}")


def write_result(result: QSMResult, out_dir: Path, record: Mapping[str, Any]) -> dict[str, Path]:
    """Write chi (float32, ppm), the brain mask (uint8) and `record` + qc/params as JSON."""
    ensure_writable_folder(out_dir)
    chi = _image(result.chi_ppm.astype(np.float32), result.affine_ras, result.voxel_mm)
    chi.header["descrip"] = f"chi ppm ref={result.reference}"[:79].encode("ascii")
    mask = _image(result.mask.astype(np.uint8), result.affine_ras, result.voxel_mm)
    mask.header["descrip"] = b"brain mask used for chi"
    content = {
        **record,
        "reference": result.reference,
        "qc": dict(result.qc),
        "params": dict(result.params),
    }
    paths = {"chi_ppm": out_dir / CHI_FILE, "mask": out_dir / MASK_FILE, "qc": out_dir / QC_FILE}
    text = json.dumps(content, indent=2, default=_json_value, allow_nan=False)
    try:
        _atomic(paths["chi_ppm"], lambda tmp: nib.save(chi, tmp))
        _atomic(paths["mask"], lambda tmp: nib.save(mask, tmp))
        _atomic(paths["qc"], lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    except OSError as exc:  # e.g. the disk filled up while writing
        raise _unwritable(out_dir, exc) from None
    return paths


def _image(data: np.ndarray, affine: np.ndarray, voxel_mm: tuple[float, ...]) -> nib.Nifti1Image:
    """Same grid as the input: the affine goes to both qform and sform as scanner coordinates."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms(tuple(voxel_mm))
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return image


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Run `write(tmp_path)`, fsync, then rename over `path`; the temp keeps the suffixes."""
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.name)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_value(value: Any) -> Any:
    """numpy scalars/arrays, tuples and paths as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
