# One target per stage; every target installs what it needs into .venv first.
# Stage targets take RUN=<run folder> (default runs/demo); extract also INPUT=<documents>.
# Extra config for any stage target: SET="section.key=value other.key=value".

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GDT := $(BIN)/gdt
RUN ?= runs/demo
CORPUS ?= runs/sample-corpus
INPUT ?= $(CORPUS)/documents.parquet
TRUTH ?= $(CORPUS)/truth.json
SET ?=
SETS := $(foreach s,$(SET),--set $(s))
CONFIG ?= training/configs/tiny.yaml
SHARDS ?= $(RUN)/shard
CHECKPOINT ?= $(shell ls -d $(RUN)/train/checkpoints/step-* 2>/dev/null | sort -V | tail -1)
CAPTIONS ?= $(RUN)/sample-captions.txt
# serve-captioner (see README, "Serving the captioner")
MODEL ?= Qwen/Qwen2.5-VL-7B-Instruct
TP ?= 1
DP ?= 1
HOST ?= 0.0.0.0
PORT ?= 8000
MAX_IMAGES ?= 8
MAX_MODEL_LEN ?= 16384
MAX_NUM_SEQS ?= 64
CHAT_TEMPLATE ?=
SERVE_ARGS ?=
SERVE_VENV ?= .venv-serve
VLLM_VERSION ?= 0.33.0

.PHONY: help install demo test test-fast lint format bench clean sample-corpus extract embed label \
	label-auto classify dedup caption shard shard-verify train sample report serve-captioner

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/gdt: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/gdt

install: $(BIN)/gdt  ## create .venv and install gdt with its test tools

# The whole pipeline on the bundled sample corpus. Each line is one stage's command: rerun any of them.
demo: install  ## the whole pipeline on the bundled sample corpus, then the report
	test -f $(TRUTH) || $(GDT) sample-corpus $(CORPUS)
	$(GDT) extract --input $(INPUT) --run $(RUN)
	$(GDT) embed --run $(RUN)
	$(GDT) label auto --run $(RUN) --truth $(TRUTH)
	$(GDT) label export --run $(RUN)
	$(GDT) classify train --run $(RUN)
	$(GDT) classify filter --run $(RUN)
	$(GDT) dedup --run $(RUN) --truth $(TRUTH)
	$(GDT) caption --run $(RUN) --backend context
	$(GDT) shard --run $(RUN)
	$(GDT) shard verify --run $(RUN)
	$(GDT) train --config $(CONFIG) --shards $(RUN)/shard --set out_dir=$(RUN)/train
	printf 'the letter A in a bold serif face\nthe letter g in a bold serif face\nthe letter R in a bold serif face\n' > $(CAPTIONS)
	$(GDT) sample --checkpoint $$(ls -d $(RUN)/train/checkpoints/step-* | sort -V | tail -1) --captions $(CAPTIONS) --out $(RUN)/samples
	$(GDT) report --run $(RUN) --truth $(TRUTH)

test: install  ## the full test suite (unit and integration)
	$(BIN)/python -m pytest

test-fast: install  ## unit tests only
	$(BIN)/python -m pytest -m "not integration and not slow"

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install  ## run every benchmark and rewrite BENCHMARKS.md
	$(BIN)/python -m benchmarks.run_all

clean:  ## remove runs/ (not .venv)
	rm -rf runs

sample-corpus: install  ## build the sample corpus into CORPUS (runs/sample-corpus)
	$(GDT) sample-corpus $(CORPUS)

extract: install  ## documents -> images, documents, candidate groups (INPUT=..., RUN=...)
	$(GDT) extract --input $(INPUT) --run $(RUN) $(SETS)

embed: install  ## per-image vectors
	$(GDT) embed --run $(RUN) $(SETS)

label: install  ## serve the annotators' web form on 127.0.0.1:8765
	$(GDT) label serve --run $(RUN)

label-auto: install  ## simulated annotator: labels from TRUTH through the web form's API
	$(GDT) label auto --run $(RUN) --truth $(TRUTH)
	$(GDT) label export --run $(RUN)

classify: install  ## train the group classifier on the labels, then filter
	$(GDT) classify train --run $(RUN) $(SETS)
	$(GDT) classify filter --run $(RUN) $(SETS)

dedup: install  ## remove duplicates within and across groups, and boilerplate
	$(GDT) dedup --run $(RUN) $(SETS)

caption: install  ## caption groups (offline context backend; see captioning/README.md for vLLM)
	$(GDT) caption --run $(RUN) --backend context $(SETS)

shard: install  ## write webdataset shards, then verify them
	$(GDT) shard --run $(RUN) $(SETS)
	$(GDT) shard verify --run $(RUN)

shard-verify: install  ## re-read and check every shard
	$(GDT) shard verify --run $(RUN)

train: install  ## train the group DiT (CONFIG=training/configs/NAME.yaml SHARDS=RUN/shard)
	$(GDT) train --config $(CONFIG) --shards $(SHARDS) $(SETS)

sample: install  ## generate a group (CHECKPOINT=.../step-N CAPTIONS=file)
	$(GDT) sample --checkpoint $(CHECKPOINT) --captions $(CAPTIONS)

report: install  ## the curation report, RUN/report/index.html
	$(GDT) report --run $(RUN) $(if $(wildcard $(TRUTH)),--truth $(TRUTH))

# On a GPU host. vLLM pins its own torch (gdt pins another), so it gets a venv of its own, made here once.
$(SERVE_VENV)/bin/vllm:
	test -d $(SERVE_VENV) || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q --upgrade pip
	$(SERVE_VENV)/bin/pip install -q "vllm==$(VLLM_VERSION)"

serve-captioner: $(SERVE_VENV)/bin/vllm  ## vllm serve MODEL for captioning (TP, DP, PORT, MAX_NUM_SEQS, ...)
	$(SERVE_VENV)/bin/vllm serve $(MODEL) --tensor-parallel-size $(TP) --data-parallel-size $(DP) \
		--host $(HOST) --port $(PORT) --limit-mm-per-prompt '{"image": $(MAX_IMAGES), "video": 0}' \
		--max-model-len $(MAX_MODEL_LEN) --max-num-seqs $(MAX_NUM_SEQS) \
		$(if $(CHAT_TEMPLATE),--chat-template $(CHAT_TEMPLATE)) $(SERVE_ARGS)