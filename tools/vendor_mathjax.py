"""Copy MathJax into _vendor/mathjax, so that the built book typesets its formulas with no network.

The book's pages would otherwise load MathJax from a public CDN, and opened offline (a classroom,
a train, an archived copy) every formula would show as raw TeX. MathJax 3.2.2 (Apache 2.0) comes
from PyPI, the registry the set-up already uses, in the package django-static-mathjax (plain
static files; it needs nothing from Django): requirements.txt pins it, and `make book` runs this
before building. _config.yml points Sphinx's mathjax_path at the copy.

    python tools/vendor_mathjax.py          # -> _vendor/mathjax/{tex-mml-chtml.js, ..., LICENSE}
"""
import shutil
import sys
from pathlib import Path

# What tex-mml-chtml.js loads: its fonts (output/), the TeX extensions it autoloads (input/), the
# right-click menu (ui/) and the accessibility tools the menu can switch on (a11y/, sre/).
PARTS = ("tex-mml-chtml.js", "output", "input", "ui", "a11y", "sre", "adaptors")


def main(dest=Path(__file__).resolve().parents[1] / "_vendor" / "mathjax"):
    try:
        import mathjax
    except ImportError:
        sys.exit("MathJax is missing: pip install -r requirements.txt (it comes in django-static-mathjax)")
    root = Path(mathjax.__file__).parent / "static" / "mathjax"
    es5 = root / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        sys.exit(f"{es5} holds no tex-mml-chtml.js: reinstall django-static-mathjax")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for part in PARTS:
        src = es5 / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / part)
    shutil.copy2(root / "LICENSE", dest / "LICENSE")
    print(f"MathJax copied to {dest}")


if __name__ == "__main__":
    main()
