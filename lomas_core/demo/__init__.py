"""The demo: a synthetic penguins-like table, its metadata and a demo config template.

Files shipped beside this module:

- ``penguins.csv``: 344 synthetic rows made by :mod:`lomas_core.demo.generate` (fixed seed). They are
  NOT the real Palmer penguins data, only the same kind of columns.
- ``penguins_metadata.yaml``: the public metadata of that table.
- ``lomas.yaml.template``: the config ``lomas demo`` writes (``{engines}`` is filled in).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_DIR", "demo_file"]

#: The folder holding the demo files.
DEMO_DIR = Path(__file__).resolve().parent


def demo_file(name: str) -> Path:
    """The path of a shipped demo file (``penguins.csv``, ``penguins_metadata.yaml``, ...)."""
    return DEMO_DIR / name
