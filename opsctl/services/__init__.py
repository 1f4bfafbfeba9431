"""Use cases (registry changes, canary, drift, retraining, health and alerts), one module each.

Each service is built from explicit adapters; every shell (daemon, CLI, TUI) calls the same ones.
This package imports nothing, so importing one service loads only what that service needs.
"""
