# Two commands on a fresh machine (Python 3.9+, no GPU needed):
#   make book   set up .venv and build the book into _build/html
#   make test   set up .venv and run every test: unit tests, nbval on every notebook (twice:
#               this CPU's kernels, then the student versions under a second set), the book
#               build with warnings as errors, and every page in a headless browser
# Both are idempotent: the environment is rebuilt only when requirements change.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Offline data for tests and default runs, where a checkout has it beside it (CI does).
ifneq ($(wildcard ../shared/data),)
export DIFFUSION_COURSE_DATA ?= $(abspath ../shared/data)
endif

# The environment the notebooks were executed in (tools/notebook.env: CPU, one thread for
# repeatable sums, quick budget, no bars); tools/execute_notebooks.py reads the same file.
NB_ENV := $(shell cat tools/notebook.env)
# A second set of CPU kernels for the notebooks: scalar ATen kernels and SSE4.1 oneDNN instead of
# the machine's AVX2/AVX-512 ones. Sums then run in another order, so a printed number that could
# differ on another CPU shows up here (CONTRIBUTING.md, "Outputs that hold on any CPU").
OTHER_KERNELS := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

.PHONY: book test unit notebooks student build-strict clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

book: $(STAMP)
	$(PY) tools/vendor_mathjax.py
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "The book is in _build/html (open _build/html/index.html)"

test: $(STAMP)
	env $(NB_ENV) $(PY) -m pytest tests book --ignore=tests/browser $(NBVAL)
	$(MAKE) --no-print-directory student
	@echo "== the student versions, under other CPU kernels ($(OTHER_KERNELS))"
	env $(NB_ENV) $(OTHER_KERNELS) $(PY) -m pytest _build/student $(NBVAL)
	$(MAKE) --no-print-directory build-strict
	@echo "== every page in headless Chromium, network blocked (screenshots in _build/screenshots)"
	$(PY) -m pytest tests/browser -p no:cacheprovider -rs

unit: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/browser -p no:cacheprovider

notebooks: $(STAMP)
	$(PY) tools/execute_notebooks.py book/*.ipynb

# The chapters without their exercise solutions, for teaching (tools/make_student.py)
student: $(STAMP)
	rm -rf _build/student
	$(PY) tools/make_student.py book/*.ipynb --out _build/student

build-strict: $(STAMP)
	rm -rf _build/.doctrees
	$(PY) tools/vendor_mathjax.py
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	$(PY) tools/check_offline.py

clean:
	rm -rf _build $(VENV)
