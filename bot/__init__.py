"""Paperboy core: settings, sources, store, text, search, matching, digest, delivery and jobs.

Nothing in this package imports ``slack_bolt`` or ``handlers``; the composition root
``bot/__main__.py`` is the one module that wires both sides together.
"""

__version__ = "0.1.0"
