"""The canary tab's gate lines show what a gate has, what it needs and when a decision is expected."""

from __future__ import annotations

from opsctl.core.gates import GateResult, Verdict
from opsctl.tui.panels import gate_line


def test_a_collecting_gate_shows_its_sample_and_expected_time():
    gate = GateResult("error_rate", Verdict.INCONCLUSIVE, value=0.001, threshold=0.001, p_value=1.0,
                      sample_size=900, sample_needed=5000, expected_seconds=720.0, collecting=True,
                      reason="collecting evidence; pass expected in ~12 min at 6.1 req/s").to_json()
    line = gate_line(gate)
    assert "n 900/5000" in line and "eta ~12 min" in line and "pass expected in ~12 min at 6.1 req/s" in line


def test_a_decided_gate_shows_no_eta():
    line = gate_line(GateResult("error_rate", Verdict.PASS, sample_size=6000, sample_needed=6000,
                                expected_seconds=0.0).to_json())
    assert "eta" not in line and "n 6000/6000" in line
