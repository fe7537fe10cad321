"""Build an `Acquisition` from NIfTI files as dcm2niix writes them (one file per echo and kind).

dcm2niix splits a multi-echo GRE series into one 3-D file per echo and image type, names phase
files ``*_ph.nii[.gz]`` (``*_e2_ph`` for later echoes) and writes a JSON sidecar next to each
with ``EchoTime`` (s), ``MagneticFieldStrength`` (T) and ``ImageType``. Siemens phase keeps the
scanner's 12-bit integer encoding (-4096..4094 after the NIfTI scale slope/intercept), so the
phase encoding is recognised from the value range rather than assumed. Every check raises
`NiftiInputError` with one plain sentence, because this is where users' mistakes arrive.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from monitor.types import (
    MIN_ECHOES,
    Acquisition,
    InvalidAcquisitionError,
    b0_direction_in_voxel_axes,
)

AFFINE_TOLERANCE_MM = 1e-3
"""Files of one series share a grid; differences above rounding mean different geometry."""

TE_TOLERANCE_S = 1e-6
RADIAN_TOLERANCE = 1e-3
SIEMENS_PHASE_LEVELS = 4096
"""Siemens stores phase as 12-bit integers: 4096 levels over one turn."""

PHASE_IMAGE_TYPES = {"P", "PHASE"}
MAGNITUDE_IMAGE_TYPES = {"M", "MAGNITUDE"}


class NiftiInputError(InvalidAcquisitionError):
    """The NIfTI inputs cannot form an acquisition; the message names the file and the reason."""


@dataclass(frozen=True)
class _Volume:
    """One input file, read: echoes stacked on the last axis."""

    path: Path
    data: np.ndarray
    affine: np.ndarray
    zooms_mm: tuple[float, float, float]
    sidecar: dict[str, Any] | None


@dataclass(frozen=True)
class LoadedInput:
    """The acquisition plus how it was read, for the record kept next to the result."""

    acquisition: Acquisition
    phase_encoding: str
    """"radians", "signed_12bit" or "unsigned_12bit"."""
    echo_time_source: str
    """"sidecar" or "override"."""
    field_strength_source: str

    def summary(self) -> dict[str, Any]:
        """Input description without file names (dcm2niix names can carry dates or names)."""
        acq = self.acquisition
        return {
            "shape": list(acq.shape),
            "n_echoes": acq.n_echoes,
            "te_ms": [round(t * 1e3, 4) for t in acq.te_s],
            "voxel_mm": list(acq.voxel_mm),
            "b0_tesla": acq.b0_tesla,
            "b0_dir_voxel": list(acq.b0_dir_voxel),
            "phase_encoding": self.phase_encoding,
            "echo_time_source": self.echo_time_source,
            "field_strength_source": self.field_strength_source,
        }


def load_acquisition(
    magnitude_paths: Sequence[Path],
    phase_paths: Sequence[Path],
    te_ms: Sequence[float] | None = None,
    b0_tesla: float | None = None,
    label: str = "",
) -> LoadedInput:
    """Read, check and pair magnitude and phase files; overrides win over sidecars.

    With `te_ms` the values belong to the echoes in the order the files are given (the user
    states the order); without it, echoes are ordered by their sidecar ``EchoTime``.
    """
    if not magnitude_paths or not phase_paths:
        raise NiftiInputError("need at least one magnitude and one phase file")
    magnitudes = [_read(Path(p)) for p in magnitude_paths]
    phases = [_read(Path(p)) for p in phase_paths]
    _check_kinds(magnitudes, phases)
    _check_same_grid(magnitudes + phases)
    n_mag = sum(v.data.shape[3] for v in magnitudes)
    n_phase = sum(v.data.shape[3] for v in phases)
    if n_mag != n_phase:
        raise NiftiInputError(
            f"{n_mag} magnitude echoes but {n_phase} phase echoes: an echo is missing"
        )
    if n_mag < MIN_ECHOES:
        raise NiftiInputError(
            f"{n_mag} echo given; QSM needs at least {MIN_ECHOES} (with one, the echo-independent "
            "phase offset cannot be told apart from the field)"
        )

    phase_rad, encoding = zip(*(_phase_to_radians(v) for v in phases), strict=True)
    magnitude = np.concatenate([v.data for v in magnitudes], axis=3).astype(np.float32)
    phase = np.concatenate(phase_rad, axis=3).astype(np.float32)

    if te_ms is not None:
        te_s = _override_echo_times(te_ms, n_mag)
        te_source = "override"
    else:
        te_s = _sidecar_echo_times(magnitudes, phases)
        te_source = "sidecar"
    order = np.argsort(te_s, kind="stable")
    te_sorted = tuple(float(te_s[i]) for i in order)

    if b0_tesla is not None:
        field, field_source = float(b0_tesla), "override"
    else:
        field, field_source = _sidecar_field_strength(magnitudes + phases), "sidecar"

    first = magnitudes[0]
    acquisition = Acquisition(
        magnitude=np.ascontiguousarray(magnitude[..., order]),
        phase_rad=np.ascontiguousarray(phase[..., order]),
        te_s=te_sorted,
        voxel_mm=first.zooms_mm,
        b0_tesla=field,
        b0_dir_voxel=b0_direction_in_voxel_axes(first.affine),
        affine_ras=first.affine,
        label=label,
    )
    return LoadedInput(acquisition, _one_encoding(encoding), te_source, field_source)


@contextmanager
def nifti_read_errors(path: Path) -> Iterator[None]:
    """Any failure to load `path` with nibabel becomes one `NiftiInputError` line.

    nibabel raises many types for a damaged or mislabelled file (a text file named .nii, a
    truncated .nii.gz); to the user they all mean the same: this file cannot be read.
    """
    try:
        yield
    except FileNotFoundError:
        raise NiftiInputError(f"file not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - see the docstring
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NiftiInputError(f"cannot read {path} as NIfTI: {reason}") from None


def _read(path: Path) -> _Volume:
    """Load one file as (x, y, z, echo) float data with its scale slope applied."""
    with nifti_read_errors(path):
        image = nib.load(path)
        data = np.asarray(image.get_fdata(dtype=np.float32))
    if data.ndim == 3:
        data = data[..., np.newaxis]
    if data.ndim != 4:
        raise NiftiInputError(f"{path} has {data.ndim} dimensions; expected 3 (one echo) or 4")
    if not np.all(np.isfinite(data)):
        raise NiftiInputError(f"{path} contains NaN or infinite values")
    # NIfTI stores float32 zooms: 1.2 reads as 1.2000000476837158. Rounding to 0.1 um gives the
    # value the user typed, which `qsm-monitor warmup --voxel-mm` compiles for.
    zooms = tuple(round(float(z), 4) for z in image.header.get_zooms()[:3])
    return _Volume(path, data, np.asarray(image.affine, float), zooms, _read_sidecar(path))


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    """The dcm2niix JSON next to the image (same stem), or None when there is none."""
    sidecar = path.with_name(_stem(path) + ".json")
    if not sidecar.is_file():
        return None
    try:
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NiftiInputError(f"cannot read sidecar {sidecar}: {exc}") from None
    if not isinstance(content, dict):
        raise NiftiInputError(f"sidecar {sidecar} is not a JSON object")
    return content


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _image_types(volume: _Volume) -> set[str]:
    value = (volume.sidecar or {}).get("ImageType", [])
    return {str(v).upper() for v in (value if isinstance(value, list) else [value])}


def _looks_like_phase(volume: _Volume) -> bool:
    return _stem(volume.path).endswith("_ph") or bool(_image_types(volume) & PHASE_IMAGE_TYPES)


def _looks_like_magnitude(volume: _Volume) -> bool:
    types = _image_types(volume)
    return not _looks_like_phase(volume) and bool(types & MAGNITUDE_IMAGE_TYPES)


def _check_kinds(magnitudes: list[_Volume], phases: list[_Volume]) -> None:
    """Catch swapped --mag/--phase from dcm2niix names and ImageType before any arithmetic."""
    for volume in magnitudes:
        if _looks_like_phase(volume):
            raise NiftiInputError(
                f"{volume.path} given as magnitude looks like a phase image "
                "(name ends in _ph or ImageType has P): are --mag and --phase swapped?"
            )
        if float(volume.data.min()) < 0:
            raise NiftiInputError(
                f"{volume.path} given as magnitude has negative values, so it is not a "
                "magnitude image: are --mag and --phase swapped?"
            )
    for volume in phases:
        if _looks_like_magnitude(volume):
            raise NiftiInputError(
                f"{volume.path} given as phase is a magnitude image (ImageType has M): "
                "are --mag and --phase swapped?"
            )


def _check_same_grid(volumes: list[_Volume]) -> None:
    reference = volumes[0]
    for volume in volumes[1:]:
        if volume.data.shape[:3] != reference.data.shape[:3]:
            raise NiftiInputError(
                f"{volume.path} has shape {volume.data.shape[:3]} but {reference.path} has "
                f"{reference.data.shape[:3]}"
            )
        if not np.allclose(volume.affine, reference.affine, atol=AFFINE_TOLERANCE_MM):
            raise NiftiInputError(
                f"{volume.path} and {reference.path} have different affines (voxel positions)"
            )


def _phase_to_radians(volume: _Volume) -> tuple[np.ndarray, str]:
    """Recognise the phase encoding from its value range; anything else is refused, not guessed.

    Radians span [-pi, pi]. Siemens 12-bit phase spans [-4096, 4094] once dcm2niix's slope 2
    and intercept -4096 are applied, or [0, 4095] when the rescale was dropped; both map one
    turn onto 4096 levels.
    """
    data = volume.data
    low, high = float(data.min()), float(data.max())
    if low >= -math.pi - RADIAN_TOLERANCE and high <= math.pi + RADIAN_TOLERANCE:
        return data, "radians"
    if np.all(data == np.round(data)):
        if low >= -SIEMENS_PHASE_LEVELS and high < SIEMENS_PHASE_LEVELS and low < 0:
            return data * (math.pi / SIEMENS_PHASE_LEVELS), "signed_12bit"
        if low >= 0 and high < SIEMENS_PHASE_LEVELS:
            return data * (2 * math.pi / SIEMENS_PHASE_LEVELS) - math.pi, "unsigned_12bit"
    raise NiftiInputError(
        f"phase values of {volume.path} span [{low:g}, {high:g}]: neither radians nor 12-bit "
        "integers (is it a magnitude image?)"
    )


def _one_encoding(encodings: Sequence[str]) -> str:
    if len(set(encodings)) != 1:
        raise NiftiInputError(f"phase files mix encodings {sorted(set(encodings))}")
    return encodings[0]


def _override_echo_times(te_ms: Sequence[float], n_echoes: int) -> np.ndarray:
    te_s = np.asarray(te_ms, dtype=float) * 1e-3
    if te_s.size != n_echoes:
        raise NiftiInputError(f"--te-ms gives {te_s.size} echo times for {n_echoes} echoes")
    if np.any(te_s <= 0) or np.any(np.diff(te_s) <= 0):
        raise NiftiInputError(
            f"--te-ms must be positive and strictly increasing in file order: {list(te_ms)}"
        )
    return te_s


def _volume_echo_times(volume: _Volume) -> list[float]:
    """EchoTime from the sidecar: one value per echo in the file (a list for merged 4-D files)."""
    if volume.sidecar is None or "EchoTime" not in volume.sidecar:
        raise NiftiInputError(
            f"no EchoTime for {volume.path} (no sidecar JSON or no EchoTime in it): pass --te-ms"
        )
    value = volume.sidecar["EchoTime"]
    times = [float(t) for t in (value if isinstance(value, list) else [value])]
    if len(times) != volume.data.shape[3]:
        raise NiftiInputError(
            f"{volume.path} holds {volume.data.shape[3]} echoes but its sidecar gives "
            f"{len(times)} EchoTime value(s): pass --te-ms"
        )
    return times


def _sidecar_echo_times(magnitudes: list[_Volume], phases: list[_Volume]) -> np.ndarray:
    """Magnitude echo times, after checking that phase files come in the same echo order."""
    mag_te = np.array([t for v in magnitudes for t in _volume_echo_times(v)])
    phase_te = np.array([t for v in phases for t in _volume_echo_times(v)])
    if np.any(mag_te <= 0):
        raise NiftiInputError(f"echo times must be positive: {mag_te.tolist()} s")
    if len(np.unique(np.round(mag_te / TE_TOLERANCE_S))) != mag_te.size:
        raise NiftiInputError(f"duplicated echo times in sidecars: {mag_te.tolist()} s")
    order_mag, order_phase = np.argsort(mag_te), np.argsort(phase_te)
    if not np.allclose(mag_te[order_mag], phase_te[order_phase], atol=TE_TOLERANCE_S):
        raise NiftiInputError(
            f"magnitude echo times {sorted(mag_te.tolist())} s differ from phase echo times "
            f"{sorted(phase_te.tolist())} s"
        )
    if not np.array_equal(order_mag, order_phase):
        raise NiftiInputError(
            "magnitude and phase files are given in different echo orders; list them alike"
        )
    return mag_te


def _sidecar_field_strength(volumes: list[_Volume]) -> float:
    values = {
        float(v.sidecar["MagneticFieldStrength"])
        for v in volumes
        if v.sidecar is not None and "MagneticFieldStrength" in v.sidecar
    }
    if not values:
        raise NiftiInputError("no MagneticFieldStrength in any sidecar: pass --b0-tesla")
    if max(values) - min(values) > 1e-3:
        raise NiftiInputError(f"sidecars disagree on field strength: {sorted(values)} T")
    return values.pop()
