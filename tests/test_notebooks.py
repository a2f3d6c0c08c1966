"""Structure checks for every chapter notebook (nbval executes them separately, see the README)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def repo_url():
    """The repository URL, which lives in _config.yml alone; notebooks must agree with it."""
    m = re.search(r"^\s*url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    return m.group(1)


def colab_cell(url):
    return ("# Set-up for Google Colab (does nothing elsewhere): fetch the course package and its checkpoints.\n"
            "import sys\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    !git clone -q --depth 1 {url} /content/diffusion-from-scratch\n"
            "    sys.path.insert(0, \"/content/diffusion-from-scratch\")")


COLAB_CELL = colab_cell("https://github.com/diffusion-from-scratch/diffusion-from-scratch")


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "".join(code[0]["source"]) == colab_cell(repo_url()), "first code cell must be the Colab set-up cell"
    assert "remove-cell" in code[0]["metadata"].get("tags", []), "the Colab cell is hidden from the rendered page"
    assert all(c.get("outputs") is not None for c in code)
    assert any(c["outputs"] for c in code), "notebooks are committed executed"
    for i, c in enumerate(code):
        assert "NBVAL_" not in "".join(c["source"]), f"cell {i}: use nbval-ignore-output tags, not comments"
        assert not [o for o in c["outputs"] if o["output_type"] == "error"], f"cell {i} has an error output"
        assert "# YOUR CODE" not in "".join(c["source"]) or "raise NotImplementedError" in "".join(c["source"])
