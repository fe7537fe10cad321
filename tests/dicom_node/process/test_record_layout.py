"""`ProcessingResult.to_record()` is typed now, but its JSON (stored rows, `--json` output)
keeps the layout the dict record always had."""

from __future__ import annotations

import json
from pathlib import Path

from support.record_rows import old_row

from dicom_node.process.pipeline import ProcessingResult
from monitor.tracking.history import HISTORY_FIELDS


def test_to_record_json_has_the_old_dict_layout() -> None:
    row = old_row()
    tracking = {name: row[name] for name in ("risk", *HISTORY_FIELDS)}
    result = ProcessingResult(
        idempotency_key=row["idempotency_key"],
        patient_id=row["patient_id"],
        study_uid=row["study_uid"],
        study_date=row["study_date"],
        series_uids=tuple(row["series_uids"]),
        outputs={name: Path(path) for name, path in row["outputs"].items()},
        structures=row["structures"],
        risk=row["risk"],
        history=tracking,
        qc=row["qc"],
    )
    assert json.dumps(result.to_record().to_json()) == json.dumps(row)
