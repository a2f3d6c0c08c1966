"""Write the student version of chapters: the book's notebooks without the exercise solutions.

    python tools/make_student.py book/*.ipynb            # -> _build/student/<chapter>.ipynb

Every code cell tagged `solution` (the collapsed reference solution after each checker) becomes a
one-line note; everything else is kept as it is, outputs included, so a student notebook runs like
the chapter: each exercise stub still raises NotImplementedError, and its checker answers with a
friendly "not written yet" line instead of a crash. `make test` runs the student versions under
nbval (the second pass), which proves both.
"""
import argparse
from pathlib import Path

import nbformat

NOTE = "*The reference solution is left out of the student version: write yours above and run its checker.*"


def student_version(nb):
    """A copy of notebook `nb` with every `solution` cell replaced by a short markdown note."""
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            out.cells.append(nbformat.v4.new_markdown_cell(NOTE))
        else:
            out.cells.append(cell)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("_build/student"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        solutions = sum("solution" in c.metadata.get("tags", []) for c in nb.cells)
        nbformat.write(student_version(nb), args.out / path.name)
        print(f"{args.out / path.name}: {solutions} solutions left out")


if __name__ == "__main__":
    main()
