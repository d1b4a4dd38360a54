# advfit — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# make install takes the versions of requirements.lock (the environment the tests and
# benchmarks ran on: Linux x86_64, Python 3.11); LOCK=0 takes the latest that pyproject.toml allows.
LOCK ?= 1
STAMP := $(VENV)/.installed$(if $(filter 0,$(LOCK)),-latest,-locked)
FMNIST := $(shell sed -n "s/^fashion_mnist_system: *//p" conf/paths/default.yaml)
ARGS ?=
# Where sweeps go: $(ADVFIT_ROOT)/multirun when ADVFIT_ROOT is set, else ./multirun; the one
# variable conf/paths/default.yaml reads too (paths.sweep_dir).
MULTIRUN := $(or $(ADVFIT_ROOT),.)/multirun
# The sweep the report targets read: the newest directory under $(MULTIRUN) that holds
# finished runs (a report's own output directory holds none).
SWEEP ?= $(shell for d in $$(ls -td $(MULTIRUN)/*/ 2>/dev/null); do \
  if find "$$d" -name DONE -print -quit | grep -q .; then echo "$$d"; break; fi; done)
REPORT = $(PY) -m advfit.report $(SWEEP)

.DEFAULT_GOAL := help
.PHONY: help install install-test lock audit test test-fast lint format train data demo paper resnet-cifar10 robust-overfitting robust-overfitting-cpu report figures tables sync dashboard bench clean

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_%-]+:.*?## ' $(MAKEFILE_LIST) | sed 's/^fig%:/fig3..fig10:/' \
	  | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install advfit with its dev tools from requirements.lock (LOCK=0: the latest), and Debian's Fashion-MNIST

# Installs a Debian package as root where it is missing: $(call debian,<command to test>,<package>)
debian = if ! ($(1)) && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's $(2)"; \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2)) >/dev/null \
	  || echo "warning: could not install $(2); what needs it will be skipped"; \
	fi

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@rm -f $(VENV)/.installed-*
	$(VENV)/bin/pip install -q --upgrade pip
ifeq ($(LOCK),0)
	$(VENV)/bin/pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
else
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
endif
	@# The demo's data: Debian's Fashion-MNIST (root on Debian only).
	@$(call debian,[ -d $(FMNIST) ],dataset-fashion-mnist)
	@touch $(STAMP)

# What only the tests use, for real: Chromium (the report's browser test), slurm-wlm and
# munge (a single-node SLURM for the cluster tests). Root on Debian only; make demo needs none.
TEST_STAMP := $(VENV)/.installed-test
install-test: $(TEST_STAMP) ## What the tests use besides install: Chromium, SLURM and munge (Debian, as root)

$(TEST_STAMP): $(STAMP)
	@missing=""; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v sbatch >/dev/null || missing="$$missing slurm-wlm"; \
	  command -v munged >/dev/null || [ -x /usr/sbin/munged ] || missing="$$missing munge"; \
	  $(call debian,[ -z "$$missing" ],$$missing)
	@touch $(TEST_STAMP)

lock: install ## Resolve requirements.lock again from pyproject.toml and requirements/pins.in (pip-tools)
	$(VENV)/bin/pip-compile -q --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
	  -c requirements/pins.in -o requirements.lock pyproject.toml

audit: install ## Check requirements.lock against PyPI's vulnerability records (pip-audit; needs pypi.org's JSON API)
	$(VENV)/bin/pip-audit --strict --no-deps --disable-pip -r requirements.lock

# make test runs the suite in TEST_JOBS pytest-xdist workers (default: one per core, at most
# 4), each with cores / workers threads (tests/conftest.py); TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))

test: install-test ## Run the test suite (installs what is missing first)
	$(PY) -m pytest -n $(TEST_JOBS) --dist worksteal

test-fast: install-test ## Run the tests that do not train on real data
	$(PY) -m pytest -n $(TEST_JOBS) --dist worksteal -m "not slow"

lint: install ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

train: install ## One run: make train ARGS="data=cifar10 regime=overfit fold=2"
	$(PY) train.py $(ARGS)

data: install ## Fetch or unpack data sets into data/ (or ADVFIT_DATA) once: make data DATA=cifar10,stl10
	$(PY) -m advfit.data prepare data=$(DATA) $(ARGS)

demo: install ## The main job: a small real study on Fashion-MNIST (minutes on a CPU; LAUNCHER=slurm)
	$(PY) train.py -m experiment=demo $(LAUNCH) $(ARGS)
	$(PY) -m advfit.summarize $(MULTIRUN)/demo
	$(PY) -m advfit.report $(MULTIRUN)/demo

# make paper runs JOBS runs at once (default: one per core, at most the 10 of a sweep), each
# with cores / JOBS threads: on 2 cores two 1-thread jobs train 32x32 LeNet faster than one
# 2-thread job (BENCHMARKS.md, "Training on a shared machine"). JOBS=1 runs
# one at a time with every core.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 10 ? n : 10 )))
# Where the jobs run: parallel (this machine, JOBS at once) or slurm (conf/local/slurm.yaml).
LAUNCHER ?= parallel
LAUNCH = hydra/launcher=$(LAUNCHER) $(if $(filter parallel,$(LAUNCHER)),hydra.launcher.n_jobs=$(JOBS))
# The data sets to fetch or unpack before a sweep: make data DATA=cifar10,stl10
DATA ?= fashion_mnist

paper: install ## The paper's protocol: CIFAR-10 and STL-10, both regimes, 5 folds, 35 epochs (LAUNCHER=slurm on a cluster)
	$(PY) train.py -m experiment=paper_cifar10 $(LAUNCH) $(ARGS)
	$(PY) train.py -m experiment=paper_stl10 $(LAUNCH) $(ARGS)
	$(PY) -m advfit.report $(MULTIRUN)/paper_cifar10 $(MULTIRUN)/paper_stl10 --out $(MULTIRUN)/paper_report

resnet-cifar10: install ## The paper's protocol with ResNet-18 on RGB CIFAR-10, eps 8/255 (a GPU job)
	$(PY) train.py -m experiment=resnet_cifar10 $(LAUNCH) $(ARGS)
	$(PY) -m advfit.report $(MULTIRUN)/resnet_cifar10

robust-overfitting: install ## Rice et al.'s robust overfitting: PGD-10 training of ResNet-18 on CIFAR-10, 200 epochs (a GPU job)
	$(PY) train.py -m experiment=robust_overfitting $(LAUNCH) $(ARGS)
	$(PY) -m advfit.report $(MULTIRUN)/robust_overfitting

robust-overfitting-cpu: install ## Adversarial training at the demo's size on Fashion-MNIST (minutes on a CPU)
	$(PY) train.py -m experiment=robust_overfitting_cpu $(LAUNCH) $(ARGS)
	$(PY) -m advfit.report $(MULTIRUN)/robust_overfitting_cpu

report: install ## Figures, tables, verdict, report.md and report.html of SWEEP=<dir> (default: latest)
	$(REPORT)

figures: install ## Every figure of SWEEP
	$(REPORT) --only fig3,fig4,fig5,fig6,fig7,fig8,fig9,fig10

tables: install ## The distance tables (Tables 2-5) of SWEEP, as Markdown, CSV and LaTeX
	$(REPORT) --only tables

fig%: install ## One figure of SWEEP: make fig3 ... make fig10
	$(REPORT) --only fig$*

# The offline runs go oldest first (their folders are named offline-run-<date>_<time>-<id>),
# so a training run's artifacts reach W&B before the evaluate and report runs that use them.
WANDB_SYNC ?= $(VENV)/bin/wandb sync
sync: install ## Upload the offline W&B runs of SWEEP=<dir>, artifacts included (after `wandb login`)
	@runs=$$(find $(SWEEP) -maxdepth 4 -path '*/wandb/offline-run-*' -type d \
	  | awk -F/ '{print $$NF, $$0}' | sort | cut -d' ' -f2-); \
	if [ -z "$$runs" ]; then echo "no offline W&B runs under $(SWEEP)"; exit 1; fi; \
	$(WANDB_SYNC) $$runs

dashboard: install ## Save the W&B workspace of the paper's figures: make dashboard ENTITY=me [PROJECT=advfit TASK=demo]
	$(PY) -m advfit.tracking.dashboard --entity "$(ENTITY)" --project "$(or $(PROJECT),advfit)" \
	  $(if $(TASK),--task $(TASK)) $(if $(DRY_RUN),--dry-run --out $(DRY_RUN))

bench: install ## Speed benchmarks (see BENCHMARKS.md for recorded results)
	$(PY) -m benchmarks.floor --shapes demo cifar10 stl10
	$(PY) -m benchmarks.training_loop
	$(PY) -m benchmarks.attacks
	$(PY) -m benchmarks.clever
	$(PY) -m benchmarks.eval_batch
	$(PY) -m benchmarks.kernels
	$(PY) -m benchmarks.shared_cores
	$(PY) -m benchmarks.launch
	$(PY) -m benchmarks.protocol --measure-epochs 2 --measure-sources 100
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
	  $(PY) -m benchmarks.on_device && $(PY) -m benchmarks.gpu_sharing --jobs 10; \
	else echo "no GPU: benchmarks.on_device and benchmarks.gpu_sharing need one"; fi

clean: ## Remove caches and the virtual environment (keeps multirun/ and data/)
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
