"""Seeded simulations of whole canaries: false rollbacks, detection and sample to pass.

Each canary is looked at every analysis interval (60 s) with its counts since the stage started,
through four stages (5, 20, 50, 100 %), at the default alpha 0.01, power 0.8 and margin (a
doubling, floored at 0.1 points). Traffic: the canary serves ``canary_rps`` at the 5 % stage (the
fleet serves 20 times that) and its share at later stages. The SLA ceiling is the larger of 1 %
and four times production's rate.

The thousands of canaries run vectorised with numpy (:func:`simulate`), a copy of the decision
rule of :mod:`opsctl.core.gates` and :func:`opsctl.core.canary.step` over whole arrays; the
replay test then feeds the same counts of a sample of canaries through the real
``evaluate_gates`` and ``step`` and requires identical outcomes look by look, so the figures
below are the real code's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from opsctl.core.canary import CanaryPolicy, Command, new_canary, step
from opsctl.core.gates import GateInputs, VersionWindow, evaluate_gates
from opsctl.core.sequential import MIXTURE_SIZE, wald_asn

ALPHA, POWER, MARGIN, FLOOR = 0.01, 0.8, 1.0, 0.001
STAGES = (5.0, 20.0, 50.0, 100.0)
INTERVAL, MIN_STAGE, FAILURE_THRESHOLD = 60.0, 300.0, 3
POLICY = CanaryPolicy(stages=list(STAGES), analysis_interval_seconds=INTERVAL, min_stage_seconds=MIN_STAGE,
                      failure_threshold=FAILURE_THRESHOLD, progress_deadline_seconds=1e9, sla_gate=False,
                      accuracy_gate=False, latency_gate=False, error_rate_alpha=ALPHA, error_rate_power=POWER,
                      error_rate_mde_relative=MARGIN, error_rate_min_baseline=FLOOR)
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def ceiling_for(baseline: float) -> float:
    return max(0.01, 4 * baseline)


@dataclass
class Outcome:
    phase: np.ndarray  # "rolled_back" | "succeeded" | "undecided"
    looks: np.ndarray  # looks made in total
    first_k10: np.ndarray  # the first look at which the canary had served >= 10 requests
    requests_to_first_pass: np.ndarray  # canary requests at the first passing look of stage 1 (nan: none)
    streams: dict[int, list[tuple[np.ndarray, ...]]] = field(default_factory=dict)  # kept for the replay


def _mixture(x: np.ndarray, m: np.ndarray, p0: np.ndarray | float, first: float) -> np.ndarray:
    p0 = np.clip(p0, 1e-300, 1 - 1e-16)
    odds0 = p0 / (1 - p0)
    terms = []
    for j in range(MIXTURE_SIZE):
        odds = first * 2.0**j * odds0
        p1 = odds / (1 + odds)
        terms.append(x * np.log(p1 / p0) + (m - x) * (np.log1p(-p1) - np.log1p(-p0)))
    return np.logaddexp.reduce(np.stack(terms), axis=0) - math.log(MIXTURE_SIZE)


def _verdicts(xc, nc, xp, np_, weight: float, ceiling: float) -> tuple[np.ndarray, np.ndarray]:
    """(fail, pass) per canary and look, as evaluate_gates decides them."""
    fail_bound = math.log(len(STAGES) / ALPHA)
    pass_bound = math.log((1 - POWER) / (1 - ALPHA))
    # error_rate_ceiling
    low = ceiling / (1 + MARGIN)
    ceil_fail = _mixture(xc, nc, ceiling, 1 + MARGIN) >= fail_bound
    ceil_llr = xc * math.log(ceiling / low) + (nc - xc) * (math.log1p(-ceiling) - math.log1p(-low))
    ceil_pass = ~ceil_fail & (ceil_llr <= pass_bound)
    if weight >= 100.0:
        return ceil_fail, ceil_pass
    # error_rate against production
    pooled = xc + xp
    with np.errstate(divide="ignore", invalid="ignore"):
        share = nc / (nc + np_)
        log_m = np.where((nc > 0) & (pooled > 0), _mixture(xc, pooled, share, 1 + MARGIN), 0.0)
    comp_fail = log_m >= fail_bound
    p0 = (xp + 0.5) / (np_ + 1.0)
    p1 = np.minimum(p0 + MARGIN * np.maximum(p0, FLOOR), (1 + p0) / 2)
    llr = xc * np.log(p1 / p0) + (nc - xc) * (np.log1p(-p1) - np.log1p(-p0))
    comp_pass = ~comp_fail & (llr <= pass_bound)
    fail = comp_fail | ceil_fail
    return fail, ~fail & comp_pass & ceil_pass


def simulate(n: int, baseline: float, canary_rps: float, canary_rate: float, *, seed: int, looks: int = 1000,
             keep: int = 0) -> Outcome:
    """n canaries through every stage; at most ``looks`` looks per stage (then "undecided")."""
    rng = np.random.default_rng(seed)
    ceiling = ceiling_for(baseline)
    fleet = canary_rps / (STAGES[0] / 100)
    phase = np.full(n, "undecided", dtype=object)
    total_looks = np.zeros(n, dtype=int)
    fails = np.zeros(n, dtype=int)
    first_k10 = np.full(n, -1)
    to_pass = np.full(n, np.nan)
    active = np.arange(n)
    streams: dict[int, list[tuple[np.ndarray, ...]]] = {i: [] for i in range(keep)}
    k = np.arange(1, looks + 1)
    for s, weight in enumerate(STAGES):
        if active.size == 0:
            break
        a = active.size
        nc = np.cumsum(rng.poisson(fleet * weight / 100 * INTERVAL, (a, looks)), axis=1)
        xc = np.cumsum(rng.binomial(np.diff(nc, prepend=0, axis=1), canary_rate), axis=1)
        np_ = np.cumsum(rng.poisson(fleet * (100 - weight) / 100 * INTERVAL, (a, looks)), axis=1)
        xp = np.cumsum(rng.binomial(np.diff(np_, prepend=0, axis=1), baseline), axis=1)
        for row, idx in enumerate(active):
            if idx in streams:
                streams[idx].append((nc[row], xc[row], np_[row], xp[row]))
        fail, passed = _verdicts(xc, nc, xp, np_, weight, ceiling)
        if s == 0:
            reached = nc >= 10
            first_k10[active] = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, -1)
            any_pass = passed.any(axis=1)
            first = passed.argmax(axis=1)
            to_pass[active] = np.where(any_pass, nc[np.arange(a), first], np.nan)
        cum_fails = fails[active][:, None] + np.cumsum(fail, axis=1)
        rolled = cum_fails >= FAILURE_THRESHOLD
        advance = passed & (k * INTERVAL >= MIN_STAGE)[None, :]
        inf = looks + 1
        roll_at = np.where(rolled.any(axis=1), rolled.argmax(axis=1) + 1, inf)
        adv_at = np.where(advance.any(axis=1), advance.argmax(axis=1) + 1, inf)
        rolled_back = roll_at < adv_at
        moves_on = adv_at < roll_at
        stop = np.where(rolled_back, roll_at, np.where(moves_on, adv_at, looks))
        total_looks[active] += stop
        phase[active[rolled_back]] = "rolled_back"
        fails[active] = cum_fails[np.arange(a), np.minimum(stop, looks) - 1]
        if s == len(STAGES) - 1:
            phase[active[moves_on]] = "succeeded"
        active = active[moves_on]
    return Outcome(phase, total_looks, first_k10, to_pass, streams)


def replay(index: int, outcome: Outcome, baseline: float) -> tuple[str, int]:
    """The kept canary's counts through the real gates and state machine: (final phase, looks)."""
    state = step(new_canary("m", "v2", "v1", T0), POLICY, T0, command=Command("start")).state
    stage_start, looks = T0, 0
    for s, (nc, xc, np_, xp) in enumerate(outcome.streams[index]):
        weight = STAGES[s]
        assert state.stage == s
        for k in range(len(nc)):
            now = stage_start + timedelta(seconds=(k + 1) * INTERVAL)
            production = VersionWindow(requests=int(np_[k]), errors=int(xp[k]))
            inputs = GateInputs(VersionWindow(requests=int(nc[k]), errors=int(xc[k])), production,
                                sla_error_rate_percent=ceiling_for(baseline) * 100, canary_weight=weight,
                                stage_seconds=(k + 1) * INTERVAL)
            state = step(state, POLICY, now, evaluation=evaluate_gates(POLICY.gate_policy, inputs)).state
            looks += 1
            if state.terminal:
                return state.phase.value, looks
            if state.stage != s:
                stage_start = now
                break
        else:
            return "undecided", looks
    return state.phase.value, looks


CONFIGS = [(b, r) for b in (0.001, 0.01, 0.05) for r in (1.0, 10.0, 100.0)]


@pytest.mark.parametrize(("baseline", "rps"), CONFIGS)
def test_healthy_canaries_are_rolled_back_at_most_alpha_of_the_time(baseline, rps):
    outcome = simulate(1000, baseline, rps, baseline, seed=int(baseline * 1e4 + rps), looks=800)
    false_rollbacks = float(np.mean(outcome.phase == "rolled_back"))
    print(f"\nhealthy {baseline:.1%} at {rps:g} req/s: {false_rollbacks:.2%} rolled back, "
          f"{np.mean(outcome.phase == 'succeeded'):.1%} promoted")
    assert false_rollbacks <= ALPHA


@pytest.mark.parametrize(("baseline", "rps"), CONFIGS)
def test_canaries_at_fifty_percent_errors_are_rolled_back_within_failure_threshold_looks(baseline, rps):
    outcome = simulate(1000, baseline, rps, 0.5, seed=7 + int(baseline * 1e4 + rps), looks=20)
    in_time = (outcome.phase == "rolled_back") & (outcome.first_k10 > 0) & (
        outcome.looks <= outcome.first_k10 + FAILURE_THRESHOLD)
    assert float(np.mean(in_time)) >= 0.99


@pytest.mark.parametrize(("baseline", "rps"), CONFIGS)
def test_canaries_at_twice_productions_error_rate_are_rolled_back_before_promotion(baseline, rps):
    outcome = simulate(1000, baseline, rps, 2 * baseline, seed=11 + int(baseline * 1e4 + rps), looks=1500)
    rolled = float(np.mean(outcome.phase == "rolled_back"))
    print(f"\n2x at {baseline:.1%}, {rps:g} req/s: {rolled:.1%} rolled back, "
          f"{np.mean(outcome.phase == 'succeeded'):.1%} promoted, {np.mean(outcome.phase == 'undecided'):.1%} open")
    assert rolled >= 0.80


@pytest.mark.parametrize("rps", [1.0, 10.0, 100.0])
def test_median_requests_to_pass_a_healthy_stage_are_near_walds(rps):
    outcome = simulate(1000, 0.001, rps, 0.001, seed=21 + int(rps), looks=800)
    median = float(np.nanmedian(outcome.requests_to_first_pass))
    wald = wald_asn(0.001, 0.002, ALPHA, 1 - POWER)
    print(f"\nmedian requests to pass stage 1 at {rps:g} req/s: {median:.0f} (Wald's ASN {wald:.0f})")
    assert median <= 1.5 * wald


@pytest.mark.parametrize(("baseline", "rps", "rate"), [(0.01, 10.0, 0.01), (0.001, 1.0, 0.5), (0.05, 10.0, 0.1),
                                                       (0.01, 100.0, 0.02)])
def test_the_vectorised_simulation_is_the_real_gates_and_state_machine(baseline, rps, rate):
    outcome = simulate(25, baseline, rps, rate, seed=3, looks=300, keep=25)
    for i in range(25):
        phase, looks = replay(i, outcome, baseline)
        assert (phase, looks) == (outcome.phase[i], int(outcome.looks[i])), i
