from opsctl.core.canary.machine import *  # noqa: F403
