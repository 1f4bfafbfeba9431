"""Every preset's rendered PromQL is accepted by a real Prometheus (syntax, vector results), and the
source sends one query per metric the preset provides. Servers whose metrics are not exported in this
session (Triton, TorchServe, Ray Serve) answer with no series: these tests check the queries, not the
servers (tests/adapters/test_prometheus_presets_live.py runs BentoML and MLServer for real)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsctl.adapters.prometheus import PrometheusSettings, PrometheusSource
from opsctl.core.presets import PRESETS
from tests.fixtures.prometheus import PrometheusStack


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_real_prometheus_accepts_every_preset_query(prometheus_stack: PrometheusStack, name: str) -> None:
    settings = PrometheusSettings(url=prometheus_stack.url, preset=name, matchers={"env": 'p"rod'})
    with PrometheusSource(settings) as source:
        for promql in source.rendered_queries(model='we"ird').values():
            source.query(promql)  # raises MetricsSourceError if Prometheus rejects it
        fleet = source.fetch_fleet(datetime.now(UTC), model="nobody-serves-this")
        provided = 6 - len(settings.not_provided())
        assert fleet.queries == provided
        assert fleet.versions == {}
        assert source.slow_counts(datetime.now(UTC), model="nobody-serves-this", bound_seconds=0.5) == {}
