"""The commands on top: ``derive``, ``run``, ``replay``, ``audit``, ``demo`` and the CLI."""
