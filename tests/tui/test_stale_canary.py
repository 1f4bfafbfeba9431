"""A canary never goes back in time on screen: a status document fetched before an abort (or a canary event)
arrives after it must not bring the running canary back, nor its keys. This was the race behind the abort test
failing under load (tests/tui/test_actions.py::test_abort_a_canary_from_the_model_screen)."""

from __future__ import annotations

import copy
from typing import Any

from opsctl.tui.model import Fleet
from tests.tui.fixed import NOW, canary_document, document


def _status_with(canary: dict[str, Any]) -> dict[str, Any]:
    status = copy.deepcopy(document())
    status["canaries"] = [canary]
    return status


def test_an_older_status_document_does_not_undo_an_abort() -> None:
    running = {**canary_document(), "revision": 4, "phase": "progressing", "active": True}
    aborted = {**running, "revision": 5, "phase": "aborted", "active": False}
    fleet = Fleet()
    fleet.apply_status(_status_with(running), NOW)
    assert fleet.apply_canary(aborted) == "fraud-detector"  # the abort's answer
    fleet.apply_status(_status_with(running), NOW)  # fetched before the abort, arriving after it
    assert fleet.canaries is not None and fleet.canaries["fraud-detector"]["phase"] == "aborted"
    assert fleet.apply_canary(running) is None  # a late event of the older revision changes nothing
    assert fleet.canaries["fraud-detector"]["phase"] == "aborted"


def test_a_newer_canary_replaces_the_last_one() -> None:
    finished = {**canary_document(), "id": 7, "revision": 9, "phase": "promoted", "active": False}
    fresh = {**canary_document(), "id": 8, "revision": 1, "phase": "progressing", "active": True}
    fleet = Fleet()
    fleet.apply_status(_status_with(finished), NOW)
    assert fleet.apply_canary(fresh) == "fraud-detector"
    assert fleet.canaries is not None and fleet.canaries["fraud-detector"]["id"] == 8
    fleet.apply_status(_status_with({**fresh, "revision": 2}), NOW)
    assert fleet.canaries["fraud-detector"]["revision"] == 2
