"""Seeded simulation of the sla gate through the real ``sla_gate``: healthy canaries exactly at the SLA.

The worst healthy case: a canary answering exactly the SLA's maximum error rate (1 %) with exactly
5 % of its requests slower than the p95 bound, looked at every 60 s over four 300 s stages with
its counts since the stage started, at alpha 0.01 split over the stages. A look that fails is a
step towards a rollback; the test counts canaries with *any* failed look (stricter than
``failure_threshold`` failed looks).
"""

from __future__ import annotations

import numpy as np
import pytest

from opsctl.core.gates import SlaInput, Verdict, VersionWindow, sla_gate

ALPHA, STAGES, LOOKS, INTERVAL = 0.01, 4, 5, 60.0
SLA = SlaInput(error_rate_percent=1.0, latency_bound_seconds=0.5)


@pytest.mark.parametrize("rps", [1.0, 10.0])
def test_healthy_canaries_at_the_sla_are_failed_at_most_alpha_of_the_time(rps: float) -> None:
    rng = np.random.default_rng(1400 + int(rps))
    canaries, failed = 1000, 0
    per_look = rng.poisson(rps * INTERVAL, size=(canaries, STAGES, LOOKS))
    for index in range(canaries):
        hit = False
        for stage in range(STAGES):
            requests = errors = slow = 0
            for look in range(LOOKS):
                n = int(per_look[index, stage, look])
                requests += n
                errors += int(rng.binomial(n, 0.01))
                slow += int(rng.binomial(n, 0.05))
                result = sla_gate(SLA, VersionWindow(requests=requests, errors=errors, slow=slow), alpha=ALPHA,
                                  stages=STAGES, stage_seconds=(look + 1) * INTERVAL)
                hit = hit or result.verdict is Verdict.FAIL
        failed += hit
    assert failed / canaries <= ALPHA, failed
