"""One side's change is judged against one side's scan-rescan noise, not both sides'.

A side's mean averages half the voxels of the bilateral mean; with independent errors its
scan-rescan SD is sqrt(2) x the bilateral one. Judged against the bilateral SD, a stable
person's side would show "reliable change" on about 16 % of visit pairs instead of 5 %.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from monitor.norms import default_model
from monitor.settings import ConfigError, RiskSettings, load_settings
from monitor.tracking.change import reliable_limit_ppb
from monitor.tracking.replay import assess_values
from monitor.tracking.values_csv import MeasuredValue

BILATERAL_SD = RiskSettings().retest_sd_ppb["thalamus"]


def _visits(change_ppb: float) -> list[MeasuredValue]:
    """Two visits a year apart; the left thalamus moves by `change_ppb`, nothing else does."""
    rows = []
    for when, left in ((datetime(2024, 3, 1), -10.0), (datetime(2025, 3, 1), -10.0 + change_ppb)):
        for side, value in (("left", left), ("right", -10.0), ("bilateral", (left - 10.0) / 2)):
            rows.append(MeasuredValue("s1", when, None, 45.0, "F", "thalamus", side, value, "p"))
    return rows


def _last_thalamus(settings, change_ppb: float) -> dict:
    visits = assess_values(_visits(change_ppb), default_model(), settings)
    return max(visits, key=lambda v: v.visit_at).assessment.structures["thalamus"]


def test_default_side_sd_is_sqrt2_times_the_bilateral_one() -> None:
    risk = RiskSettings()
    assert risk.side_retest_sd("thalamus") == pytest.approx(math.sqrt(2) * BILATERAL_SD)
    assert RiskSettings(side_retest_sd_ppb={"thalamus": 3.0}).side_retest_sd("thalamus") == 3.0


def test_a_side_change_between_the_two_limits_is_not_reliable() -> None:
    bilateral_limit = reliable_limit_ppb(BILATERAL_SD)
    side_limit = reliable_limit_ppb(math.sqrt(2) * BILATERAL_SD)
    change = (bilateral_limit + side_limit) / 2  # 8.0 ppb: over 6.7, under 9.4
    thalamus = _last_thalamus(load_settings(None), change)
    left = thalamus["sides"]["left"]
    assert left["change_ppb"] == pytest.approx(change, abs=1e-3)
    assert left["reliable_change"] is False
    configured = load_settings(None, risk={"side_retest_sd_ppb": {"thalamus": BILATERAL_SD}})
    assert _last_thalamus(configured, change)["sides"]["left"]["reliable_change"] is True


def test_stable_sides_flag_at_the_nominal_rate_only_with_the_side_sd() -> None:
    """Independent side errors of SD sqrt(2) x bilateral: the false-alarm rate of one side."""
    rng = np.random.default_rng(21)
    differences = rng.normal(0.0, math.sqrt(2) * math.sqrt(2) * BILATERAL_SD, 20000)
    with_side = np.mean(np.abs(differences) > reliable_limit_ppb(math.sqrt(2) * BILATERAL_SD))
    with_bilateral = np.mean(np.abs(differences) > reliable_limit_ppb(BILATERAL_SD))
    assert with_side == pytest.approx(0.05, abs=0.006)
    assert with_bilateral == pytest.approx(0.165, abs=0.01)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"thalamas": 3.0}, "side_retest_sd_ppb has unknown structures \\['thalamas'\\]"),
        ({"thalamus": 0.0}, "side_retest_sd_ppb.thalamus: Input should be greater than"),
        ({"thalamus": True}, "side_retest_sd_ppb.thalamus: Input should be a valid number"),
    ],
)
def test_side_sd_table_is_checked(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, risk={"side_retest_sd_ppb": table})
