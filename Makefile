# Two entry points (see README): `make demo` and `make test`. Each creates its own venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NVCODEC := $(VENV)/bin/nvcodec
DEMO_DIR ?= build/demo

.PHONY: demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	mkdir -p $(DEMO_DIR)
	$(NVCODEC) encode samples/kodim23.png $(DEMO_DIR)/kodim23.nvc --quality 3 --force
	$(NVCODEC) info $(DEMO_DIR)/kodim23.nvc
	$(NVCODEC) decode $(DEMO_DIR)/kodim23.nvc $(DEMO_DIR)/kodim23.png --force
	$(NVCODEC) encode samples/LJ001-0004.wav $(DEMO_DIR)/LJ001-0004.nvc --bitrate 6k --force
	$(NVCODEC) decode $(DEMO_DIR)/LJ001-0004.nvc $(DEMO_DIR)/LJ001-0004.wav --force
	$(NVCODEC) encode samples/bigbuckbunny_360p.mp4 $(DEMO_DIR)/bigbuckbunny.nvc --quality 4 --force
	$(NVCODEC) info $(DEMO_DIR)/bigbuckbunny.nvc
	$(NVCODEC) decode $(DEMO_DIR)/bigbuckbunny.nvc $(DEMO_DIR)/bigbuckbunny.mp4 --force

test: $(VENV)/.installed
	$(PY) -m ruff check nvcodec tests benchmarks
	$(PY) -m ruff format --check nvcodec tests benchmarks
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
