"""``opsctl backup`` and ``opsctl restore``: arguments in ``args``, handlers in ``handlers``."""
