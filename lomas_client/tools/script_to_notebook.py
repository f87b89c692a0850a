"""Turn a percent-format script (``# %%`` cells) into a Jupyter notebook without outputs.

Usage: ``python lomas_client/tools/script_to_notebook.py examples/walkthrough.py [out.ipynb]``

``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines lose their ``# ``
prefix. Only the standard library is used; the output follows nbformat 4.5.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["convert", "script_cells"]


def script_cells(text: str) -> list[tuple[str, str]]:
    """``(kind, source)`` for each cell of a percent-format script."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
            continue
        if not cells:
            cells.append(("code", []))
        kind, lines = cells[-1]
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else line.lstrip("#")
        lines.append(line)
    out = []
    for kind, lines in cells:
        source = "\n".join(lines).strip("\n")
        if source:
            out.append((kind, source))
    return out


def convert(text: str) -> dict[str, Any]:
    """The notebook (as a JSON-ready dict) for a percent-format script."""
    cells = []
    for index, (kind, source) in enumerate(script_cells(text)):
        lines = source.splitlines(keepends=True)
        cell: dict[str, Any] = {"cell_type": kind,
                                "id": hashlib.sha1(f"{index}:{source}".encode()).hexdigest()[:8],
                                "metadata": {}, "source": lines}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {"cells": cells, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def main(argv: list[str]) -> int:
    src = Path(argv[1])
    dst = Path(argv[2]) if len(argv) > 2 else src.with_suffix(".ipynb")
    dst.write_text(json.dumps(convert(src.read_text(encoding="utf-8")), indent=1,
                              ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
