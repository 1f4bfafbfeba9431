"""``opsctl migrate``: arguments in ``args``, handlers in ``handlers`` (imported when the command runs)."""
