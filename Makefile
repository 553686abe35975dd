# vistsne: two commands on a fresh machine -- `make demo` and `make test`.
# Every target but install and clean installs first when needed.

PYTHON      ?= python3.11
VENV        ?= .venv
BIN         := $(VENV)/bin
VISTSNE     := $(BIN)/vistsne
STAMP       := $(VENV)/.installed

CONFIG      ?= configs/digits_resnet18.py
CHECKPOINT  ?= work_dirs/demo/digits_resnet18.pth
STORE       ?=
STAGE       ?= pre_logits
PERPLEXITY  ?= 30
SWEEP_PERPLEXITY ?= 5,15,30,50
N_ITER      ?= 750
SEED        ?= 0
OUT         ?= work_dirs/figures
QUICK       ?=
# TEST_WORKERS=N: pytest-xdist processes of `make test` (one test file per process at a time; 0: in-process)
TEST_WORKERS ?= 2
# NPROC=N: extract on N ranks of this node (torchrun, --launcher pytorch; gloo on CPUs, nccl on GPUs)
NPROC       ?=
FULL        ?=
# THUMB_SIZE=N: thumbnail side extract stores (8-256 px, 0 for none; default: by the rows selected)
THUMB_SIZE  ?=
# MAX_NUM_CLASS / MAX_NUM_SAMPLES: the selection of every target (N or all; default 20 and 100);
# SUBSAMPLE=N: embed a class-balanced N rows and place the others into that map (large selections)
MAX_NUM_CLASS   ?=
MAX_NUM_SAMPLES ?=
SUBSAMPLE   ?=
# PRECISION=bfloat16 (or float16 on GPUs): the model runs under autocast; every target picks that entry
PRECISION   ?=

comma := ,
empty :=
space := $(empty) $(empty)
# PERPLEXITY may be one value or a space- or comma-separated list
PERPLEXITY_LIST = $(subst $(space),$(comma),$(strip $(PERPLEXITY)))
STORE_ARG   = $(if $(strip $(STORE)),--store $(STORE),)
CKPT_ARG    = $(if $(strip $(CHECKPOINT)),--checkpoint $(CHECKPOINT),)
EXTRACT_CMD = $(if $(strip $(NPROC)),$(BIN)/python -m torch.distributed.run --standalone --nproc_per_node $(NPROC) -m vistsne extract,$(VISTSNE) extract)
LAUNCHER_ARG = $(if $(strip $(NPROC)),--launcher pytorch,)
THUMB_ARG   = $(if $(strip $(THUMB_SIZE)),--thumb-size $(THUMB_SIZE),)
SELECT_ARG  = $(if $(strip $(MAX_NUM_CLASS)),--max-num-class $(MAX_NUM_CLASS),) $(if $(strip $(MAX_NUM_SAMPLES)),--max-num-samples $(MAX_NUM_SAMPLES),)
PREC_ARG    = $(if $(strip $(PRECISION)),--precision $(PRECISION),)
SUB_ARG     = $(if $(strip $(SUBSAMPLE)),--subsample $(SUBSAMPLE),)

.PHONY: install demo test extract embed sweep render compare bench clean browser checkpoint help

help:
	@echo "make demo | test | extract | embed | sweep | render | compare | bench | install | clean"
	@echo "variables: CONFIG CHECKPOINT STORE STAGE PERPLEXITY N_ITER SEED NPROC (see README.md)"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; install Python 3.11 (or run make PYTHON=python3.X with 3.10 or newer)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || { echo "make: vistsne needs Python >= 3.10; run make PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "make: could not create $(VENV); install the venv module (apt-get install python3-venv)"; exit 1; }
	@echo "installing vistsne and its pinned dependencies into $(VENV) (first time: a few minutes)"
	@$(BIN)/python -m pip install -q --upgrade "pip>=23" >/dev/null || { echo "make: pip upgrade failed; check the network to the package registry"; exit 1; }
	@$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]" || { echo "make: installing dependencies failed (see pip's message above); check the registry and constraints.txt, then rerun make install"; exit 1; }
	@$(BIN)/python -c "import vistsne, torch, torchvision, mmpretrain, openTSNE, zarr" 2>/dev/null || { echo "make: the installed stack does not import; run $(BIN)/python -c 'import mmpretrain' to see why"; exit 1; }
	@touch $(STAMP)
	@echo "install: $(VENV) ready"

DEMO_CKPT   := work_dirs/demo/digits_resnet18.pth
# the demo checkpoint is trained once (CPU, a few minutes) when CHECKPOINT is the default
NEED_CKPT    = $(if $(filter $(DEMO_CKPT),$(CHECKPOINT)),$(DEMO_CKPT),)

$(DEMO_CKPT): | $(STAMP)
	$(VISTSNE) demo --train-only

checkpoint: $(DEMO_CKPT)

demo: $(STAMP)
	$(VISTSNE) demo $(STORE_ARG)

extract: $(STAMP) $(NEED_CKPT)
	$(EXTRACT_CMD) $(CONFIG) $(CKPT_ARG) $(STORE_ARG) $(LAUNCHER_ARG) $(THUMB_ARG) $(PREC_ARG) $(SELECT_ARG)

embed: extract
	$(VISTSNE) embed $(STORE_ARG) $(CONFIG) $(CKPT_ARG) $(PREC_ARG) $(SELECT_ARG) $(SUB_ARG) --stage $(STAGE) --perplexity $(PERPLEXITY_LIST) --n-iter $(N_ITER) --seed $(SEED)

sweep: extract
	$(VISTSNE) embed $(STORE_ARG) $(CONFIG) $(CKPT_ARG) $(PREC_ARG) $(SELECT_ARG) $(SUB_ARG) --stage $(STAGE) --perplexity $(if $(filter command line,$(origin PERPLEXITY)),$(PERPLEXITY_LIST),$(SWEEP_PERPLEXITY)) --n-iter $(N_ITER) --seed $(SEED)

render: embed
	$(VISTSNE) render $(STORE_ARG) $(CONFIG) $(CKPT_ARG) $(PREC_ARG) $(SELECT_ARG) --out $(OUT) --format png,html

# CHECKPOINTS: two or more files, or a quoted glob (natural order: epoch_2 before epoch_10)
CHECKPOINTS ?=
compare: $(STAMP)
	@test -n "$(strip $(CHECKPOINTS))" || { echo 'make: give CHECKPOINTS="a.pth b.pth" (or a quoted glob)'; exit 2; }
	$(VISTSNE) compare $(STORE_ARG) $(CONFIG) $(PREC_ARG) $(SELECT_ARG) $(foreach c,$(CHECKPOINTS),--checkpoint '$(c)') --stage $(STAGE) --perplexity $(firstword $(subst $(comma),$(space),$(PERPLEXITY_LIST))) --n-iter $(N_ITER) --seed $(SEED) --out $(OUT)

browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  && echo "browser: installed Debian chromium" || echo "browser: chromium not installed (needs root and apt-get); the browser test will skip"; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -ra -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(if $(QUICK),--quick,) $(if $(FULL),--full,)

clean:
	rm -rf $(VENV) work_dirs build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
