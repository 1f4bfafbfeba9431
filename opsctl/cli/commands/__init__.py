"""Command groups that later subsystems add to ``opsctl`` (health, alerts, canary, drift, ...).

Each module exposes ``add_commands(sub, command)`` and only declares arguments;
handlers are ``module:function`` strings imported when their command runs.
"""
