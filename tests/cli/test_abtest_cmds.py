"""`opsctl abtest` and its API twin, checked against statsmodels on the same numbers."""

from __future__ import annotations

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

from tests.fixtures.cli import OpsctlEnv
from tests.fixtures.daemon import DaemonProcess


def test_ztest_json_agrees_with_statsmodels(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("abtest", "ztest", "--control", "2000/10000", "--treatment", "220/1000", "-o", "json")
    assert result.code == 0, result.stderr
    document = result.json()
    z, p = proportions_ztest([220, 2000], [1000, 10000])
    assert document["z"] == pytest.approx(z, rel=1e-9)
    assert document["p_value"] == pytest.approx(p, rel=1e-9)
    assert document["relative_lift"] == pytest.approx(0.1)
    assert document["significant"] is False


def test_chapter_sample_size_agrees_with_statsmodels(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("abtest", "sample-size", "--baseline", "0.2", "--mde", "0.1", "-o", "json")
    assert result.code == 0, result.stderr
    expected = NormalIndPower().solve_power(proportion_effectsize(0.22, 0.2), alpha=0.05, power=0.8)
    assert result.json()["per_group"] == 6508 == int(expected) + 1
    assert "6508 per group" in opsctl_env.run("abtest", "sample-size", "--baseline", "0.2", "--mde", "0.1").stdout


def test_sequential_reports_every_look(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("abtest", "sequential", "--look", "100/500:130/500", "--look", "200/1000:270/1000",
                            "-o", "json")
    assert result.code == 0, result.stderr
    looks = result.json()["looks"]
    assert [look["looks"] for look in looks] == [1, 2]
    assert looks[1]["always_valid_p_value"] <= looks[0]["always_valid_p_value"]


@pytest.mark.parametrize("args,message", [
    (["ztest", "--control", "20/10", "--treatment", "1/2"], "exceeds control_total"),
    (["ztest", "--control", "twenty", "--treatment", "1/2"], "--control must be SUCCESSES/TOTAL"),
    (["sample-size", "--baseline", "1.5", "--mde", "0.1"], "baseline"),
    (["sequential"], "at least one --look"),
])
def test_bad_input_is_a_usage_error(opsctl_env: OpsctlEnv, args: list[str], message: str) -> None:
    result = opsctl_env.run("abtest", *args)
    assert result.code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_the_api_gives_the_same_answers(daemon: DaemonProcess) -> None:
    client = daemon.http()
    ztest = client.post("/v1/abtest/ztest", json={"control": "2000/10000", "treatment": {"successes": 220,
                                                                                         "total": 1000}})
    assert ztest.status_code == 200 and ztest.json()["p_value"] == pytest.approx(proportions_ztest(
        [220, 2000], [1000, 10000])[1], rel=1e-9)
    size = client.post("/v1/abtest/sample-size", json={"baseline": 0.2, "mde": 0.1})
    assert size.json()["per_group"] == 6508
    bad = client.post("/v1/abtest/sequential", json={"looks": "nope"})
    assert bad.status_code == 400 and "looks" in bad.json()["error"]["message"]


@pytest.mark.parametrize(("baseline", "mde", "alpha"), [(0.5, 1e-10, 0.05), (0.5, 1e-300, 0.05), (1e-300, 1e-10, 0.05),
                                                        (1e-300, 1e-300, 1e-300)])
def test_sample_size_at_the_edge_of_floating_point_is_a_usage_error_not_a_hang(baseline: float, mde: float,
                                                                                alpha: float) -> None:
    # Found by schemathesis: mde 1e-10 looped for ever, mde 1e-300 divided by zero, tiny rates overflowed.
    from opsctl import abtest_requests
    from opsctl.errors import UsageError

    with pytest.raises(UsageError):
        abtest_requests.sample_size(baseline, mde, alpha=alpha, power=0.8, alternative="two-sided")


def test_a_sequential_test_with_a_huge_tau_is_a_usage_error_not_a_crash() -> None:
    # Found by schemathesis: tau 1.8e308 squared to infinity and math.log(0) raised ValueError (HTTP 500).
    from opsctl import abtest_requests
    from opsctl.errors import UsageError

    looks = [abtest_requests.parse_look("9/10496071:93/10880684", 0), abtest_requests.parse_look("4/170:283/96", 1)]
    with pytest.raises(UsageError, match="outside the range"):
        abtest_requests.sequential(looks, alpha=0.05, tau=1.7976931348623155e308, min_samples=100)
