"""The glossary and notation pages: every link lands on a real section, every quoted line of the
package is really there."""
import importlib
import inspect
import re
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.dollarmath import dollarmath_plugin
from myst_parser.mdit_to_docutils.base import compute_unique_slug

BOOK = Path(__file__).resolve().parent.parent / "book"
PAGES = ["glossary.md", "notation.md"]
LINK = re.compile(r"\]\(([^)#\s]+\.(?:ipynb|md))(?:#([^)\s]+))?\)")


def anchors(path):
    """The section anchors MyST gives a page (myst_heading_anchors: 3 in _config.yml), computed with
    MyST's own slug function."""
    if path.suffix == ".ipynb":
        texts = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    else:
        texts = [path.read_text()]
    md, slugs = MarkdownIt("commonmark").use(dollarmath_plugin), []
    for text in texts:
        for node in SyntaxTreeNode(md.parse(text)).walk():
            if node.type == "heading" and int(node.tag[1]) <= 3:
                slugs.append(compute_unique_slug(node, slugs))
    return slugs


@pytest.mark.parametrize("page", PAGES)
def test_links_land_on_a_section(page):
    text = (BOOK / page).read_text()
    links = LINK.findall(text)
    assert len(links) >= 10, f"{page} should link its entries to the chapters"
    cache = {}
    for target, anchor in links:
        path = BOOK / target
        assert path.exists(), f"{page} links to {target}, which is not in book/"
        if anchor:
            cache.setdefault(target, anchors(path))
            assert anchor in cache[target], f"{page}: no section #{anchor} in {target}; it has {cache[target]}"


def test_glossary_defines_the_core_terms():
    text = (BOOK / "glossary.md").read_text().lower()
    assert "```{glossary}" in text
    for term in ["tensor", "embedding", "sigma", "latent", "cross-attention", "guidance scale", "denoiser",
                 "sampler", "vae", "clip"]:
        assert re.search(rf"^{re.escape(term)}\b", text, re.M), f"the glossary has no entry '{term}'"


CODE = re.compile(r"`(diffusion_course(?:\.\w+)+)`: `([^`]+)`")


def test_notation_quotes_real_lines():
    """Each symbol row names the function that computes it and quotes its line: the line must be there."""
    rows = CODE.findall((BOOK / "notation.md").read_text())
    assert len(rows) >= 10
    for dotted, line in rows:
        module, name = dotted.rsplit(".", 1)
        try:
            obj = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError:             # a method: module.Class.method
            module, cls = module.rsplit(".", 1)
            obj = getattr(getattr(importlib.import_module(module), cls), name)
        source = " ".join(inspect.getsource(obj).split())
        assert " ".join(line.split()) in source, f"notation.md quotes `{line}` from {dotted}, which does not have it"
