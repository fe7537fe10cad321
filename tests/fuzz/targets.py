"""Coverage-guided fuzz targets (atheris) over the ingest path and the `process` file reader.

Run one directly for a longer session, e.g. an hour on the assembly target:

    .venv/bin/python tests/fuzz/targets.py assembly CORPUS_DIR -max_total_time=3600

Each target states a contract that must hold for *any* bytes, and raises (a crash the fuzzer
reports and saves) when it does not:

* `ingest`: what the listener does with a received data set before answering. Parsing may
  fail (the listener answers 0xC210); an instance that validation accepts must carry the
  command's SOP Instance UID, study and series UIDs and pixel data.
* `assembly`: `assemble_study`, which `qsm-monitor process` and the service's intake call,
  never raises on a study in which one file is arbitrary bytes (the rest a valid series).
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import atheris
import numpy as np  # imported uninstrumented: only our code and pydicom are traced
import sqlalchemy  # noqa: F401

with atheris.instrument_imports(include=["pydicom", "dicom_node", "monitor"]):
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    from dicom_node.assemble.study import assemble_study
    from dicom_node.receive.catalogue import InstanceHeader
    from dicom_node.receive.validation import unusable_reason

SOP_UID = "1.2.826.0.1.3680043.8.498.1"


def ingest(data: bytes) -> None:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        sop_class = str(ds.get("SOPClassUID", ""))
        reason = unusable_reason(ds, SOP_UID, ExplicitVRLittleEndian, sop_class)
        header = InstanceHeader.from_dataset(ds, SOP_UID, sop_class) if reason is None else None
    except Exception:  # noqa: BLE001 - the listener answers these 0xC210 (cannot understand)
        return
    if header is None:
        return  # refused with a reason (0xA900)
    # Accepted: then it must really be a fileable, intact image.
    assert str(ds.SOPInstanceUID).strip() == SOP_UID
    assert header.study_uid and header.series_uid
    assert any(keyword in ds for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


class AssemblyTarget:
    """A valid small series on disk; the fuzzer's bytes replace one of its files."""

    def __init__(self, series: list[Path]) -> None:
        self.series = series
        self.victim = series[0]

    def __call__(self, data: bytes) -> None:
        self.victim.write_bytes(data)
        assemble_study(self.series)  # contract: never raises


def seed_series(folder: Path) -> list[Path]:
    """Two echoes of a 2-slice Siemens magnitude/phase pair: a real assembly path."""
    from dicom_node.synthetic.series import write_acquisition_series
    from monitor.types import Acquisition, b0_direction_in_voxel_axes

    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    rng = np.random.default_rng(0)
    shape = (8, 8, 2, 2)
    acquisition = Acquisition(
        magnitude=rng.uniform(100.0, 900.0, shape),
        phase_rad=rng.uniform(-3.0, 3.0, shape),
        te_s=(0.004, 0.008),
        voxel_mm=(2.0, 2.0, 2.0),
        b0_tesla=3.0,
        b0_dir_voxel=b0_direction_in_voxel_axes(affine),
        affine_ras=affine,
        label="fuzz",
    )
    return write_acquisition_series(acquisition, folder, "siemens")


def seed_corpus(corpus: Path, work: Path) -> None:
    """Every file of the seed series (and one Enhanced MR object) as a starting input."""
    corpus.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(seed_series(work / "seed")):
        (corpus / f"seed-{index:02d}.dcm").write_bytes(path.read_bytes())


def main(argv: list[str]) -> None:
    target_name, corpus = argv[1], Path(argv[2])
    work = Path(tempfile.mkdtemp(prefix="qsm-fuzz-"))
    if not any(corpus.glob("*")):
        seed_corpus(corpus, work)
    target = ingest if target_name == "ingest" else AssemblyTarget(seed_series(work / "study"))
    atheris.Setup([argv[0], str(corpus), *argv[3:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
