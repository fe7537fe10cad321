"""Small synthetic MR files and DCMTK peer helpers for the listener tests and benchmark."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"
STORESCP = "/usr/bin/storescp"
DCM2NIIX = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
"""The PyPI `dcm2niix` (a test dependency) puts its binary beside the venv's Python."""
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
"""DCMTK's runtime switch to disable Nagle: otherwise its split PDU writes wait ~40 ms for
delayed ACKs on loopback and every tool measures the kernel's timer, not the DICOM stack."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before in this process.

    The port is released before its user binds it, so a second call could otherwise return the
    same number: a test that took a port for our listener and then started Orthanc on two
    more once failed with "Address already in use" when the listener bound its port."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def mr_dataset(
    study_uid: str,
    series_uid: str,
    instance_number: int = 1,
    images_in_acquisition: int | None = None,
    size: int = 8,
    with_pixels: bool = True,
    columns: int | None = None,
    comment: str = "",
) -> Dataset:
    """A minimal single-frame MR image (no patient data) with random 12-bit pixels; `size`
    rows by `columns` (default square), `comment` pads the header as a scanner's would."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.SeriesNumber = 3
    ds.InstanceNumber = instance_number
    ds.EchoNumbers = 1
    ds.EchoTime = 20.0
    ds.ImageType = ["ORIGINAL", "PRIMARY", "P", "ND"]
    if comment:
        ds.ImageComments = comment
    if images_in_acquisition is not None:
        ds.ImagesInAcquisition = images_in_acquisition
    if with_pixels:
        width = size if columns is None else columns
        pixels = np.random.default_rng(instance_number).integers(0, 4096, (size, width))
        ds.Rows, ds.Columns = size, width
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def write_series(
    folder: Path,
    count: int,
    images_in_acquisition: int | None = None,
    size: int = 8,
    columns: int | None = None,
    comment: str = "",
) -> list[Path]:
    """`count` instances of one new series in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = []
    for number in range(1, count + 1):
        ds = mr_dataset(
            study_uid,
            series_uid,
            number,
            images_in_acquisition,
            size,
            columns=columns,
            comment=comment,
        )
        path = folder / f"{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def storescu(
    port: int, files: list[Path], *options: str, calling_ae: str = "SCANNER", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Send files with DCMTK's storescu in one association (verbose: statuses in stderr)."""
    args = [STORESCU, "-v", "-aet", calling_ae, "-aec", "QSMMON", *options, "127.0.0.1", str(port)]
    return subprocess.run(
        [*args, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=DCMTK_ENV,
    )


def echoscu(
    port: int, *options: str, calling_ae: str = "SCANNER"
) -> subprocess.CompletedProcess[str]:
    args = [ECHOSCU, "-aet", calling_ae, "-aec", "QSMMON", *options, "127.0.0.1", str(port)]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=False, env=DCMTK_ENV
    )
