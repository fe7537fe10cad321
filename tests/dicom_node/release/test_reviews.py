"""The release gate on a real database (SQLite and PostgreSQL): held outputs leave only
after an approval, a rejection needs a reason and sends nothing, decisions are final."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.db import configured_engine, create_schema
from dicom_node.deliver.outbox import Outbox
from dicom_node.queue.leasing import WorkState
from dicom_node.queue.results import add_result_once
from dicom_node.release import ReleaseGate, ReviewError, ReviewState
from monitor.settings import Settings, load_settings


def _settings(tmp_path: Path, db_url: str, require_review: bool = True) -> Settings:
    return load_settings(
        None,
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        destinations=[{"name": "drop", "kind": "folder", "path": tmp_path / "drop"}],
        release={"require_review": require_review},
    )


def _outputs(tmp_path: Path, name: str) -> dict[str, Path]:
    folder = tmp_path / "outputs" / name
    folder.mkdir(parents=True)
    sr = folder / "sr.dcm"
    sr.write_bytes(b"not really DICOM, the folder sender copies bytes")
    return {"sr": sr}


def _gate(settings: Settings) -> ReleaseGate:
    sessions = create_schema(configured_engine(settings.storage))
    return ReleaseGate(sessions, settings, Outbox(sessions, settings))


def _submit(gate: ReleaseGate, key: str, study_uid: str, outputs: dict[str, Path]) -> None:
    with gate.sessions() as session:
        record = {"outputs": {name: str(path) for name, path in outputs.items()}}
        add_result_once(session, key, study_uid, record)
        gate.submit(session, key, study_uid, outputs)
        session.commit()


def _deliver_all(gate: ReleaseGate) -> None:
    while gate.outbox.deliver_next("test"):
        pass


def test_held_outputs_reach_the_folder_only_after_approval(db_url: str, tmp_path: Path) -> None:
    gate = _gate(_settings(tmp_path, db_url))
    _submit(gate, "acq-1", "1.2.3", _outputs(tmp_path, "a"))
    _submit(gate, "acq-1", "1.2.3", _outputs(tmp_path, "again"))  # a retried job: one review
    assert gate.outbox.rows() == []
    (review,) = gate.listed(ReviewState.PENDING)
    assert gate.counts() == {"pending": 1, "approved": 0, "rejected": 0}
    _deliver_all(gate)
    assert not (tmp_path / "drop").exists()  # nothing left before the decision

    assert gate.approve(review.id, "rita") == 1
    _deliver_all(gate)
    delivered = list((tmp_path / "drop").rglob("sr.dcm"))
    assert len(delivered) == 1
    assert [row.state for row in gate.outbox.rows()] == [WorkState.DONE]
    decided = gate.get(review.id)
    assert decided is not None and decided.state == "approved" and decided.decided_by == "rita"
    with pytest.raises(ReviewError, match="already approved by rita"):
        gate.reject(review.id, "victor", "too late")
    assert gate.resend("1.2.3") == 1  # an approved study may be sent again


def test_rejection_needs_a_reason_and_sends_nothing(db_url: str, tmp_path: Path) -> None:
    gate = _gate(_settings(tmp_path, db_url))
    _submit(gate, "acq-2", "1.2.4", _outputs(tmp_path, "b"))
    (review,) = gate.listed(ReviewState.PENDING)
    with pytest.raises(ReviewError, match="await review"):
        gate.resend("1.2.4")
    with pytest.raises(ReviewError, match="needs a reason"):
        gate.reject(review.id, "rita", "   ")
    gate.reject(review.id, "rita", "thalamus label  over the ventricle")
    rejected = gate.get(review.id)
    assert rejected is not None and rejected.reason == "thalamus label over the ventricle"
    with pytest.raises(ReviewError, match="already rejected"):
        gate.approve(review.id, "rita")
    with pytest.raises(ReviewError, match="rejected"):
        gate.resend("1.2.4")
    _deliver_all(gate)
    assert gate.outbox.rows() == [] and not (tmp_path / "drop").exists()
    with pytest.raises(ReviewError, match="no review"):
        gate.approve(9999, "rita")


def test_without_review_outputs_go_to_the_outbox_at_once(db_url: str, tmp_path: Path) -> None:
    gate = _gate(_settings(tmp_path, db_url, require_review=False))
    _submit(gate, "acq-3", "1.2.5", _outputs(tmp_path, "c"))
    assert gate.listed() == []
    assert len(gate.outbox.rows()) == 1
