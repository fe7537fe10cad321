"""Several values after one flag (`--mag e1.nii e2.nii`), as a shell expands a glob."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from dicom_node.cli import app
from monitor.cli_options import expand_multi_value_options

NAMES = ("--mag", "--phase")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--mag", "a", "b"], ["--mag", "a", "--mag", "b"]),
        (["--mag=a", "b", "--out", "o"], ["--mag=a", "--mag", "b", "--out", "o"]),
        (["--mag", "a", "--mag", "b"], ["--mag", "a", "--mag", "b"]),
        (["--out", "o", "x", "--phase", "p"], ["--out", "o", "x", "--phase", "p"]),
        (["--mag", "a", "--", "b"], ["--mag", "a", "--", "b"]),
    ],
)
def test_expands_only_bare_tokens_after_a_multi_value_flag(args, expected):
    assert expand_multi_value_options(args, NAMES) == expected


def _recon_params(args: list[str]) -> dict:
    recon = typer.main.get_command(app).commands["recon"]  # type: ignore[attr-defined]
    return recon.make_context("recon", args).params


def test_recon_takes_echo_files_listed_after_one_flag():
    listed = _recon_params(
        [
            "--mag",
            "m1.nii",
            "m2.nii",
            "m3.nii",
            "--phase",
            "p1.nii",
            "p2.nii",
            "p3.nii",
            "--out",
            "o",
            "--te-ms",
            "4",
            "8",
            "12",
        ]
    )
    repeated = _recon_params(
        [
            "--out",
            "o",
            "--phase",
            "p1.nii",
            "--mag",
            "m1.nii",
            "--phase",
            "p2.nii",
            "--mag",
            "m2.nii",
            "--mag",
            "m3.nii",
            "--phase",
            "p3.nii",
            "--te-ms",
            "4,8,12",
        ]
    )
    assert listed["mag"] == repeated["mag"] == [Path(f"m{k}.nii") for k in (1, 2, 3)]
    assert listed["phase"] == repeated["phase"] == [Path(f"p{k}.nii") for k in (1, 2, 3)]
    assert listed["te_ms"] == ["4", "8", "12"]
    assert listed["out"] == Path("o")


def test_a_stray_value_after_another_option_is_still_an_error():
    with pytest.raises(Exception, match="unexpected extra argument"):
        _recon_params(["--mag", "m.nii", "--phase", "p.nii", "--out", "o", "stray"])
