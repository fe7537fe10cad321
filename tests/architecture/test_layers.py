"""The folders keep the data flow: layering rules hold on the real tree, and are seen to fail
on a tree with planted violations."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.import_rules import violations

REPO = Path(__file__).resolve().parents[2]


def test_the_source_tree_keeps_every_layering_rule():
    assert violations(REPO) == []


def _copy_tree(tmp_path: Path) -> Path:
    for package in ("monitor", "dicom_node"):
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n\ndef _planted():\n    {line}\n")


def test_planted_violations_are_each_reported(tmp_path):
    root = _copy_tree(tmp_path)
    _plant(root, "monitor.measure", "from dicom_node.queue import jobs")
    _plant(root, "dicom_node.assemble.study", "from dicom_node.process import pipeline")
    _plant(root, "dicom_node.outputs.sr", "from dicom_node.synthetic import series")
    _plant(root, "dicom_node.queue.jobs", "import dicom_node.cli")
    _plant(root, "dicom_node.geometry", "from dicom_node.receive import spool")

    found = "\n".join(violations(root))

    assert "domain imports the DICOM adapter: monitor.measure" in found
    assert "stage assemble imports downstream stage process: dicom_node.assemble.study" in found
    assert "stage outputs imports demo, synthetic or CLI code: dicom_node.outputs.sr" in found
    assert "stage queue imports demo, synthetic or CLI code: dicom_node.queue.jobs" in found
    assert "shared leaf imports a stage: dicom_node.geometry" in found


def test_a_planted_cycle_inside_one_stage_is_reported(tmp_path):
    root = _copy_tree(tmp_path)
    _plant(root, "dicom_node.deliver.items", "from dicom_node.deliver import sender")

    cycles = [v for v in violations(root) if v.startswith("import cycle")]

    assert cycles and "dicom_node.deliver.items" in cycles[0]
    assert "dicom_node.deliver.sender" in cycles[0]
