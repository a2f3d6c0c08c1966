"""Execute notebooks in place the way they are committed: CPU, quick budget, no progress bars.

    .venv/bin/python tools/execute_notebooks.py book/01_tensors.ipynb [more.ipynb ...]

Prints each notebook's wall time (the budget is at most 3 minutes on a 2-core CPU).
The environment is tools/notebook.env, the one nbval uses in `make test`, so the saved outputs compare.
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(line.split("=", 1) for line in (ROOT / "tools" / "notebook.env").read_text().split())
ENV["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"


def main(paths):
    os.environ.update(ENV)
    shared = ROOT.parent / "shared" / "data"
    if "DIFFUSION_COURSE_DATA" not in os.environ and shared.is_dir():
        os.environ["DIFFUSION_COURSE_DATA"] = str(shared)
    for p in paths:
        p = Path(p)
        nb = nbformat.read(p, as_version=4)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(p.parent)}}).execute()
        for cell in nb.cells:                      # keep the diff of re-executed notebooks small
            cell.metadata.pop("execution", None)
        colab = next(c for c in nb.cells if c.cell_type == "code")
        tags = colab.metadata.setdefault("tags", [])
        if "remove-cell" not in tags:              # the Colab set-up cell is for Colab, not the printed page
            tags.append("remove-cell")
        nbformat.write(nb, p)
        print(f"{p}: executed in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
