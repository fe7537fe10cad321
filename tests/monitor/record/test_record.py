"""The typed processing record: stored rows of the old dict layout load and round-trip
unchanged, and a misspelt or renamed field fails loudly instead of dropping a value."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from support.record_rows import old_row

from monitor.record import (
    TRACKING_FIELDS,
    ProcessingRecord,
    Risk,
    Structures,
    StructureValues,
    Values,
)
from monitor.tracking.history import HISTORY_FIELDS


def test_old_dict_row_loads_and_round_trips_byte_for_byte() -> None:
    row = old_row()
    record = ProcessingRecord.from_json(json.loads(json.dumps(row)))
    assert json.dumps(record.to_json()) == json.dumps(row)  # same keys, values and order
    assert record.risk == Risk("normal", ("no reliable change", "decision support"))
    putamen = record.structures.get("putamen")
    assert putamen is not None and putamen.bilateral.mean_ppb == 71.0
    assert record.structures.values("putamen", "left") == putamen.sides["left"]
    assert putamen.sides["right"].reference_range_ppb == (40.5, 120.25)
    assert record.structures.reference == "whole_brain"
    assert record.qc.segmentation_method == "atlas" and record.qc.segmentation_reportable
    assert record.norms is not None and record.norms.name == "literature-3T-2024"
    assert record.amendment == 0 and "amendment" not in record.to_json()


def test_unknown_keys_in_stored_json_are_ignored_and_missing_ones_default() -> None:
    row = {**old_row(), "added_by_a_newer_node": {"x": 1}}
    row["structures"]["putamen"]["new_score"] = 0.5
    for name in ("identity_status", "norms", "reassessed_study_uids"):
        del row[name]
    record = ProcessingRecord.from_json(row)
    assert record.identity_status is None and record.norms is None
    assert record.structures.values("putamen", "bilateral").z == 1.234
    assert "added_by_a_newer_node" not in record.to_json()


def test_amended_row_keeps_its_amendment_fields() -> None:
    row = {**old_row(), "amendment": 2, "superseded_risk_level": "elevated"}
    record = ProcessingRecord.from_json(row)
    assert (record.amendment, record.superseded_risk_level) == (2, "elevated")
    assert record.to_json() == row


def test_rows_from_before_per_side_statistics_give_the_side_means() -> None:
    row = old_row()
    for name in ("caudate", "putamen"):
        del row["structures"][name]["sides"]
    left = ProcessingRecord.from_json(row).structures.values("caudate", "left")
    assert left == Values(mean_ppb=60.0)


def test_a_withheld_side_or_structure_is_absent_not_zero() -> None:
    one_side = StructureValues(bilateral=Values(mean_ppb=70.0), sides={"left": Values(68.0)})
    structures = Structures({"putamen": one_side}, reference="whole_brain")
    assert structures.values("putamen", "right") is None
    assert structures.values("caudate", "bilateral") is None
    stored = structures.to_json()
    assert stored["putamen"]["right_ppb"] is None and list(stored["putamen"]["sides"]) == ["left"]
    assert Structures.from_json(stored) == structures
    assert not Structures.from_json({}) and Structures.from_json({}).to_json() == {}


def test_misspelt_or_renamed_fields_fail_loudly() -> None:
    record = ProcessingRecord.from_json(old_row())
    with pytest.raises(TypeError, match="mean_pbb"):
        Values(mean_pbb=1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="risk_level"):
        replace(record, risk_level="elevated")  # type: ignore[call-arg]
    values = record.structures.values("putamen", "bilateral")
    assert values is not None
    with pytest.raises(AttributeError, match="chnage_ppb"):
        _ = values.chnage_ppb  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="levle"):
        _ = record.risk.levle  # type: ignore[union-attr]
    with pytest.raises(AttributeError):
        record.error = "changed"  # type: ignore[misc]  # frozen


def test_tracking_fields_match_what_the_tracking_step_writes() -> None:
    assert TRACKING_FIELDS == HISTORY_FIELDS
