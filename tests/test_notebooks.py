"""Structure checks for every chapter notebook (nbval executes them separately, see the README)."""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from make_student import student_version  # noqa: E402
from notebook_code import MAX_LINE, long_lines  # noqa: E402
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_fits_the_page(path):
    """No shown code line runs past the rendered code box (tools/notebook_code.py measured its width)."""
    too_long = long_lines(path)
    assert not too_long, (f"{len(too_long)} code lines wider than {MAX_LINE} characters, e.g. cell {too_long[0][0]} "
                          f"line {too_long[0][1]}: list them with `python tools/notebook_code.py book/{path.name}`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_student_version_keeps_stubs_and_checkers_and_drops_the_solutions(path):
    import nbformat
    nb = nbformat.read(path, as_version=4)
    student = student_version(nb)
    code = [c.source for c in student.cells if c.cell_type == "code"]
    stubs = [i for i, src in enumerate(code) if "# YOUR CODE HERE" in src]
    assert stubs, "every chapter has exercises"
    for i in stubs:                         # each stub, then its checker called on it
        name = re.search(r"^def (\w+)\(", code[i], re.M).group(1)
        assert f"({name})" in code[i + 1] and "check" in code[i + 1], f"no checker after the stub {name}"
    assert not [src for src in code if re.search(r"^def \w+_solution\(", src, re.M)], \
        "a solution is left in the student version: tag its cell `solution`"
    removed = sum(c.cell_type == "code" for c in nb.cells) - len(code)
    assert removed == len(stubs), "one solution per exercise is left out"


TABLE_ROW = re.compile(r"\S {3,}\S")     # columns: a run of 3+ spaces between two words


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_tables_fit_the_page(path):
    """Printed prose wraps in its box on the page (css/outputs.css); a printed table would break
    its columns, so its rows must fit the box's 80 characters."""
    nb = json.loads(path.read_text())
    wide = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code" or {"remove-output", "remove-cell"} & set(c["metadata"].get("tags", [])):
            continue
        for o in c["outputs"]:
            data = o.get("data", {})
            if o["output_type"] == "stream":
                text = "".join(o["text"])
            elif "text/html" in data or "image/png" in data:
                continue
            else:
                text = "".join(data.get("text/plain", ""))
            wide += [(i, line) for line in text.split("\n") if len(line) > MAX_LINE and TABLE_ROW.search(line)]
    assert not wide, f"{len(wide)} printed table rows wider than {MAX_LINE} characters, e.g. cell {wide[0][0]}: {wide[0][1]!r}"
