"""Daemon subsystems (health, canary, drift, retrain, ...), one module each.

Every module here exposes ``SUBSYSTEM = Subsystem(...)`` and is picked up at
start-up by :func:`opsctld.main.load_subsystems`; adding a subsystem never
means editing the daemon's core.
"""
