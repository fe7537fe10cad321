"""Every log line passes one filter that hashes DICOM UIDs, third-party messages included;
patient references in audit events are keyed digests."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import stat
import subprocess
import sys
from pathlib import Path

from pydicom.uid import generate_uid

from dicom_node.logs import (
    LOG_KEY_FILE,
    JsonLineFormatter,
    configure_logging,
    log_event,
    patient_log_ref,
    redact_uids,
    uid_hash,
)


def test_uids_in_free_text_become_hashes_and_nothing_else_changes():
    uid = generate_uid()
    text = (
        f"Sending file: /spool/ab/cd/{uid}.dcm to 127.0.0.1 (pynetdicom 2.1.1, 1.2.840.10008.1.1)"
    )
    redacted = redact_uids(text)
    assert uid not in redacted and f"uid:{uid_hash(uid)}" in redacted
    assert "127.0.0.1" in redacted and "2.1.1" in redacted
    assert "1.2.840.10008.1.1" not in redacted  # a SOP class UID is still a UID


def _line(logger_name: str, emit) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return json.loads(stream.getvalue())


def test_third_party_messages_and_our_fields_are_redacted():
    uid = generate_uid()
    pynetdicom_line = _line("pynetdicom.assoc", lambda log: log.warning("Store SCP: %s", uid))
    ours = _line("dicom_node.test", lambda log: log_event(log, "unreadable", reason=f"file {uid}"))
    assert uid not in json.dumps(pynetdicom_line) and uid not in json.dumps(ours)
    assert pynetdicom_line["event"] == f"Store SCP: uid:{uid_hash(uid)}"


def test_third_party_narration_is_capped_and_the_node_events_stay(capsys):
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {n: logging.getLogger(n).level for n in ("highdicom", "alembic", "pynetdicom")}
    try:
        configure_logging(logging.INFO)
        logging.getLogger("highdicom.sr").info("building content item")
        logging.getLogger("alembic.runtime.migration").info("will assume transactional DDL")
        logging.getLogger("highdicom").warning("a real problem")
        logging.getLogger("dicom_node.process").info("job done")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
    messages = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert messages == ["a real problem", "job done"]


def test_patient_reference_is_keyed_per_installation(tmp_path: Path) -> None:
    """A plain hash of an 8-digit patient ID is reversed by hashing every ID; the keyed
    reference needs the installation's key file (mode 0600), and is stable with it."""
    site_a, site_b = tmp_path / "a", tmp_path / "b"
    ref = patient_log_ref("12345678", "HOSP", site_a)
    assert ref == patient_log_ref(" 12345678 ", "HOSP", site_a)
    assert ref != patient_log_ref("12345679", "HOSP", site_a)
    assert ref != patient_log_ref("12345678", "HOSP", site_b)
    assert ref != hashlib.sha256(b"HOSP|12345678").hexdigest()[:16]
    key_file = site_a / LOG_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    assert sorted(p.name for p in site_a.iterdir()) == [LOG_KEY_FILE]  # no temporary left


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from dicom_node.logs import patient_log_ref; "
        "print(patient_log_ref('42', 'X', Path(sys.argv[1])))"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(6)
    ]
    refs = {run.communicate()[0].decode().strip() for run in runs}
    assert len(refs) == 1 and len(next(iter(refs))) == 16
