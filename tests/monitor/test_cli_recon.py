"""`qsm-monitor recon`: NIfTI input conventions, one-line input errors, end-to-end on a phantom."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, io_orientation, ornt_transform
from support.node_helpers import DCM2NIIX
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.synthetic.series import write_acquisition_series
from monitor.nifti.reader import load_acquisition
from monitor.phantom import FAST_CONFIG, Phantom, simulate_phantom
from monitor.phantom.dcm2niix_style import write_dcm2niix_style
from monitor.phantom.evaluate import roi_agreement
from monitor.types import Acquisition, b0_direction_in_voxel_axes

TE_S = (0.004, 0.008, 0.012)
SHAPE = (10, 9, 7)
PHASE_STEP_RAD = math.pi / 2048
"""Resolution of Siemens 12-bit phase: the loader cannot do better than this."""


def _oblique_affine() -> np.ndarray:
    angle = math.radians(15)
    rotation = np.array(
        [[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.0, 1.2, 2.0])
    affine[:3, 3] = (-5.0, -6.0, -7.0)
    return affine


@pytest.fixture
def acquisition() -> Acquisition:
    rng = np.random.default_rng(7)
    frequency_hz = rng.uniform(-60, 60, SHAPE)
    phase = np.stack([2 * math.pi * frequency_hz * te for te in TE_S], axis=-1)
    magnitude = np.stack([rng.uniform(50, 100, SHAPE) * math.exp(-te / 0.03) for te in TE_S], -1)
    affine = _oblique_affine()
    return Acquisition(
        magnitude=magnitude.astype(np.float32),
        phase_rad=phase.astype(np.float32),
        te_s=TE_S,
        voxel_mm=(1.0, 1.2, 2.0),
        b0_tesla=3.0,
        b0_dir_voxel=b0_direction_in_voxel_axes(affine),
        affine_ras=affine,
    )


@pytest.fixture
def series(tmp_path: Path, acquisition: Acquisition) -> tuple[list[Path], list[Path]]:
    return write_dcm2niix_style(acquisition, tmp_path / "nifti")


def _wrapped_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a - b))))


def test_reads_siemens_integer_phase_as_radians(series, acquisition):
    loaded = load_acquisition(*series)
    acq = loaded.acquisition
    assert loaded.phase_encoding == "signed_12bit"
    assert acq.te_s == TE_S
    assert acq.b0_tesla == 3.0
    np.testing.assert_allclose(acq.affine_ras, acquisition.affine_ras, atol=1e-5)
    np.testing.assert_allclose(acq.voxel_mm, acquisition.voxel_mm, atol=1e-6)
    np.testing.assert_allclose(acq.b0_dir_voxel, acquisition.b0_dir_voxel, atol=1e-5)
    assert _wrapped_difference(acq.phase_rad, acquisition.phase_rad).max() <= PHASE_STEP_RAD
    ratio = acq.magnitude[..., 0] / acquisition.magnitude[..., 0]
    assert np.ptp(ratio) / ratio.mean() < 0.02  # integer magnitude keeps contrast


def test_sorts_echoes_by_sidecar_echo_time(series, acquisition):
    magnitudes, phases = series
    acq = load_acquisition(magnitudes[::-1], phases[::-1]).acquisition
    assert acq.te_s == TE_S
    assert _wrapped_difference(acq.phase_rad, acquisition.phase_rad).max() <= PHASE_STEP_RAD


def test_single_4d_files_in_radians_with_overrides(tmp_path, acquisition):
    for name, data in (("mag.nii", acquisition.magnitude), ("phase.nii", acquisition.phase_rad)):
        wrapped = np.angle(np.exp(1j * data)) if name == "phase.nii" else data
        image = nib.Nifti1Image(wrapped.astype(np.float32), acquisition.affine_ras)
        nib.save(image, tmp_path / name)
    loaded = load_acquisition(
        [tmp_path / "mag.nii"], [tmp_path / "phase.nii"], te_ms=[4, 8, 12], b0_tesla=7.0
    )
    assert loaded.phase_encoding == "radians"
    assert loaded.acquisition.te_s == pytest.approx(TE_S)
    assert loaded.acquisition.b0_tesla == 7.0
    assert _wrapped_difference(loaded.acquisition.phase_rad, acquisition.phase_rad).max() < 1e-5


def _args(magnitudes: list[Path], phases: list[Path], out: Path) -> list[str]:
    args = ["recon", "--out", str(out)]
    for path in magnitudes:
        args += ["--mag", str(path)]
    for path in phases:
        args += ["--phase", str(path)]
    return args


def _edit_sidecar(image: Path, **changes: object) -> None:
    sidecar = image.with_name(image.name.removesuffix(".nii.gz") + ".json")
    content = json.loads(sidecar.read_text())
    content.update(changes)
    sidecar.write_text(json.dumps({k: v for k, v in content.items() if v is not None}))


def _rewrite(image: Path, shape: tuple[int, ...] | None = None, shift_mm: float = 0.0) -> None:
    original = nib.load(image)
    data = np.asarray(original.dataobj)
    if shape is not None:
        data = np.zeros(shape, dtype=data.dtype)
    affine = original.affine.copy()
    affine[0, 3] += shift_mm
    nib.save(nib.Nifti1Image(data, affine, original.header), image)


def _missing_echo(m, p, tmp):
    return _args(m, p[:-1], tmp)


def _shape_mismatch(m, p, tmp):
    _rewrite(p[1], shape=(SHAPE[0] + 1, *SHAPE[1:]))
    return _args(m, p, tmp)


def _affine_mismatch(m, p, tmp):
    _rewrite(m[2], shift_mm=3.0)
    return _args(m, p, tmp)


def _duplicated_echo_time(m, p, tmp):
    for image in (m[1], p[1]):
        _edit_sidecar(image, EchoTime=TE_S[0])
    return _args(m, p, tmp)


def _decreasing_override(m, p, tmp):
    return [*_args(m, p, tmp), "--te-ms", "12,8,4"]


def _no_sidecar_no_override(m, p, tmp):
    for image in m + p:
        image.with_name(image.name.removesuffix(".nii.gz") + ".json").unlink()
    return [*_args(m, p, tmp), "--b0-tesla", "3"]


def _no_field_strength(m, p, tmp):
    for image in m + p:
        _edit_sidecar(image, MagneticFieldStrength=None)
    return _args(m, p, tmp)


def _unreadable_file(m, p, tmp):
    p[0].write_bytes(b"not a nifti file")
    return _args(m, p, tmp)


def _file_not_found(m, p, tmp):
    return _args([*m[:-1], m[-1].with_name("absent.nii.gz")], p, tmp)


def _swapped(m, p, tmp):
    return _args(p, m, tmp)


def _one_echo(m, p, tmp):
    return _args(m[:1], p[:1], tmp)


def _output_under_a_file(m, p, tmp):
    blocker = tmp.parent / "blocker"
    blocker.write_text("a file, not a folder")
    return _args(m, p, blocker / "out")


def _bad_config(m, p, tmp):
    config = tmp.parent / "bad.toml"
    config.write_text("[recon]\ntv_iterations = -3\n")
    return [*_args(m, p, tmp), "--config", str(config)]


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (_missing_echo, "an echo is missing"),
        (_shape_mismatch, "has shape"),
        (_affine_mismatch, "different affines"),
        (_duplicated_echo_time, "duplicated echo times"),
        (_decreasing_override, "strictly increasing"),
        (_no_sidecar_no_override, "pass --te-ms"),
        (_no_field_strength, "pass --b0-tesla"),
        (_unreadable_file, "cannot read"),
        (_file_not_found, "file not found"),
        (_swapped, "swapped"),
        (_bad_config, "recon.tv_iterations"),
        (_one_echo, "at least 2"),
        (_output_under_a_file, "cannot write to output folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    series, tmp_path, make_args: Callable[..., list[str]], expected: str
):
    magnitudes, phases = series
    out = tmp_path / "out"
    result = CliRunner().invoke(app, make_args(list(magnitudes), list(phases), out))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert not out.exists()


def _dcm2niix(acq: Acquisition, work: Path) -> tuple[list[Path], list[Path]]:
    """Real dcm2niix on the synthetic Siemens DICOM series; (magnitude, phase) NIfTI paths."""
    write_acquisition_series(acq, work / "dicom", style="siemens")
    out = work / "dcm2niix"
    out.mkdir()
    subprocess.run(
        [DCM2NIIX, "-z", "y", "-o", str(out), str(work / "dicom")],
        check=True,
        capture_output=True,
    )
    magnitudes = sorted(p for p in out.glob("*.nii.gz") if not p.name.endswith("_ph.nii.gz"))
    return magnitudes, sorted(out.glob("*_ph.nii.gz"))


def _same_grid(data: np.ndarray, affine: np.ndarray, target_affine: np.ndarray) -> np.ndarray:
    """Reorder axes/flips so `data` lies on the grid of `target_affine` (dcm2niix may flip)."""
    transform = ornt_transform(io_orientation(affine), io_orientation(target_affine))
    return apply_orientation(data, transform)


def test_reads_real_dcm2niix_output_of_siemens_dicom(tmp_path, acquisition):
    magnitudes, phases = _dcm2niix(acquisition, tmp_path)
    loaded = load_acquisition(magnitudes, phases)
    acq = loaded.acquisition
    assert loaded.phase_encoding == "signed_12bit"
    assert acq.te_s == pytest.approx(TE_S)
    assert acq.b0_tesla == pytest.approx(acquisition.b0_tesla)
    phase = _same_grid(acq.phase_rad, acq.affine_ras, acquisition.affine_ras)
    assert _wrapped_difference(phase, acquisition.phase_rad).max() <= PHASE_STEP_RAD
    np.testing.assert_allclose(
        np.abs(acq.b0_dir_voxel), np.abs(acquisition.b0_dir_voxel), atol=1e-4
    )


SMALL_PHANTOM = replace(FAST_CONFIG, shape=(64, 72, 48), voxel_mm=(2.5, 2.5, 2.5))
"""Coarse enough for a CI budget, large enough to hold the deep grey matter in the mask."""


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return simulate_phantom(SMALL_PHANTOM, 0)


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory) -> Path:
    """Shared by both end-to-end runs: the second one also exercises loading from the cache."""
    return tmp_path_factory.mktemp("jax-cache")


def _run_cli(magnitudes: list[Path], phases: list[Path], out: Path, cache: Path) -> None:
    """The installed `qsm-monitor` in a fresh process, as a user or the benchmark runs it."""
    config = out.parent / "settings.toml"
    config.write_text(f'[recon]\ncompilation_cache_dir = "{cache}"\n')
    command = [str(Path(sys.executable).with_name("qsm-monitor")), *_args(magnitudes, phases, out)]
    completed = subprocess.run(
        [*command, "--config", str(config), "--json"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "inversion" in completed.stderr  # stage progress is shown
    written = json.loads(completed.stdout)  # --json: only the written files on stdout
    assert Path(written["chi_ppm"]) == out / "chi_ppm.nii.gz" and Path(written["qc"]).exists()


def _check_outputs(out: Path, input_image: Path, phantom: Phantom) -> None:
    """Outputs on the input grid, chi in ppm, and deep grey matter tracking the truth."""
    reference = nib.load(input_image)
    chi_image, mask_image = nib.load(out / "chi_ppm.nii.gz"), nib.load(out / "mask.nii.gz")
    for image in (chi_image, mask_image):
        assert image.shape == reference.shape
        np.testing.assert_allclose(image.affine, reference.affine, atol=1e-4)
    assert chi_image.get_data_dtype() == np.float32
    assert b"ppm" in chi_image.header["descrip"].tobytes()
    record = json.loads((out / "qc.json").read_text())
    assert record["input"]["n_echoes"] == SMALL_PHANTOM.n_echoes
    assert record["params"]["inversion"] and record["qc"]["seconds"]
    target = phantom.acquisition.affine_ras
    chi = _same_grid(chi_image.get_fdata(), chi_image.affine, target)
    mask = _same_grid(mask_image.get_fdata(), mask_image.affine, target) > 0
    agreement = roi_agreement(phantom, chi, mask)
    assert agreement.r_squared > 0.6, agreement
    assert agreement.slope > 0.4, agreement  # also catches a flipped phase sign


@pytest.mark.slow
def test_recon_end_to_end_on_dcm2niix_style_phantom(tmp_path, phantom, compile_cache):
    magnitudes, phases = write_dcm2niix_style(phantom.acquisition, tmp_path / "nifti")
    _run_cli(magnitudes, phases, tmp_path / "out", compile_cache)
    _check_outputs(tmp_path / "out", magnitudes[0], phantom)


@pytest.mark.slow
def test_recon_end_to_end_through_dicom_and_real_dcm2niix(tmp_path, phantom, compile_cache):
    magnitudes, phases = _dcm2niix(phantom.acquisition, tmp_path)
    assert len(magnitudes) == len(phases) == SMALL_PHANTOM.n_echoes
    _run_cli(magnitudes, phases, tmp_path / "out", compile_cache)
    _check_outputs(tmp_path / "out", magnitudes[0], phantom)


def _cache_entries(folder: Path) -> set[str]:
    return {path.name for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_recon_after_warmup_compiles_nothing_in_a_new_folder(tmp_path, phantom):
    """`qsm-monitor warmup` fills the per-user cache with every program a real run of that
    grid needs: a recon from another folder, on data with other echo times and a mask of its
    own, adds no cache entry (each new compilation would add one)."""
    magnitudes, phases = write_dcm2niix_style(phantom.acquisition, tmp_path / "nifti")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    executable = str(Path(sys.executable).with_name("qsm-monitor"))
    acq = phantom.acquisition
    warm = [
        executable,
        "warmup",
        "--shape",
        *map(str, acq.shape),
        "--echoes",
        str(acq.n_echoes),
        "--voxel-mm",
        *map(str, acq.voxel_mm),
    ]
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
    done = subprocess.run(warm, cwd=tmp_path / "first", env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    cache = tmp_path / "xdg" / "qsm-monitor" / "jax"
    warmed = _cache_entries(cache)
    assert warmed
    done = subprocess.run(
        [executable, *_args(magnitudes, phases, tmp_path / "out")],
        cwd=tmp_path / "second",
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert _cache_entries(cache) - warmed == set()
    assert not (tmp_path / "second" / "qsm-monitor-data").exists()
