# Nightshelf: the README's commands. Two environments, as Airflow advises:
#   .venv          job runtime (Spark, TensorFlow, MLflow, GX) + the nightshelf CLI
#   .venv-airflow  scheduler / DAG parsing / SparkSubmitOperator
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
AF_VENV := .venv-airflow
export NIGHTSHELF_HOME ?= $(CURDIR)/var
export NIGHTSHELF_AIRFLOW_VENV := $(CURDIR)/$(AF_VENV)
NS := $(VENV)/bin/nightshelf
DS ?= $(shell sed -n 's/^  end: "\(.*\)".*/\1/p' nightshelf/defaults.yaml)
PYTEST_ARGS ?=

.PHONY: install demo night backfill test test-integration lint ui airflow bench-quality \
	bench-quality-night bench-scale clean-home help stack-images stack-up stack-night package \
	stack-down test-stack

help:
	@echo "make demo   - install, generate a synthetic shop, run one whole night through Airflow"
	@echo "make test   - install, run the test suite (unit, Spark, GX, training, DAG, end-to-end)"
	@echo "make night DS=YYYY-MM-DD - run the DAG for one logical date on what has landed"
	@echo "make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD - run those nights in order"
	@echo "make test-integration - a night and a 2-night backfill through Airflow's scheduler on"
	@echo "             PostgreSQL, Spark standalone and an MLflow server, all on loopback (~25 min)"
	@echo "make ui     - MLflow UI on http://127.0.0.1:5000"
	@echo "make airflow - Airflow's UI on http://127.0.0.1:8080 (the grid of the nights run here)"
	@echo "make lint   - flake8 + isort --check + import-linter (the layers)"
	@echo "make stack-up | stack-night DS=YYYY-MM-DD | stack-down - the docker stack (docker/)"
	@echo "make test-stack - build the images, run a night in the stack, check it, take it down"
	@echo "make bench-scale [TIERS=\"S M L\"] - a night per scale tier, per-stage time and memory"
	@echo "make bench-quality-night PROFILE=grocery - 3 nights on a shop profile, every model's holdout"

$(VENV)/.installed: setup.cfg pyproject.toml constraints/jobs.txt
	@echo "== installing the job environment ($(VENV)): Spark, TensorFlow, MLflow, GX"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints/jobs.txt -e '.[jobs,dev,s3,s3-test]'
	touch $@

$(AF_VENV)/.installed: setup.cfg pyproject.toml constraints/airflow.txt
	@echo "== installing the Airflow environment ($(AF_VENV))"
	test -x $(AF_VENV)/bin/python || $(PYTHON) -m venv $(AF_VENV)
	$(AF_VENV)/bin/pip install -q --upgrade pip
	$(AF_VENV)/bin/pip install -q -c constraints/airflow.txt -e '.[airflow,dev]'
	touch $@

install: $(VENV)/.installed $(AF_VENV)/.installed

demo: install
	@echo "== generating a synthetic shop under $(NIGHTSHELF_HOME)"
	$(NS) generate
	@echo "== cleaning the shop's history (every landed day before $(DS)) with Spark"
	$(NS) bootstrap --until $(DS)
	@echo "== running the night $(DS) through Airflow (airflow dags test recsys_nightly $(DS))"
	$(NS) night --ds $(DS)

night: install
	$(NS) night --ds $(DS)

# consecutive nights in order, e.g. make backfill FROM=2026-11-16 TO=2026-11-22
backfill: install
	@test -n "$(FROM)" -a -n "$(TO)" || (echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD"; exit 2)
	$(NS) backfill --from $(FROM) --to $(TO)

# the job environment runs everything but the DAG tests, which need Airflow itself
test: install
	$(AF_VENV)/bin/python -m pytest -p no:cacheprovider tests/dags $(PYTEST_ARGS)
	$(VENV)/bin/python -m pytest -m "not bench and not integration and not stack" \
		--ignore=tests/dags \
		$(PYTEST_ARGS)

# real services on loopback, started and stopped by the test: PostgreSQL (Debian's
# postgresql), an MLflow server on it, a Spark standalone master and worker, Airflow's
# api-server, scheduler and dag-processor; headless chromium for the screenshots
test-integration: install
	$(VENV)/bin/python -m pytest -p no:cacheprovider -m integration tests/integration \
		$(PYTEST_ARGS)

lint: install
	$(VENV)/bin/flake8 nightshelf jobs training expectations dags tests bench
	$(VENV)/bin/isort --check-only nightshelf jobs training expectations dags tests bench
	$(VENV)/bin/lint-imports

DATA ?= ../shared/data/amazon_beauty/Beauty.txt
ATTRS ?=
SEEDS ?= 13
# the pipeline's own SASRec under the standard protocol (leave-one-out, full ranking)
bench-quality: install
	TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/python -m training.bench --data $(DATA) \
		$(if $(ATTRS),--attrs $(ATTRS)) --out $(or $(OUT),bench/results/quality-beauty.json) \
		--seeds $(SEEDS) $(BENCH_ARGS)

PROFILE ?= grocery
NIGHTS ?= 3
# consecutive nights through the DAG on a shop profile (default, grocery, marketplace): every
# model's holdout NDCG@10 / HR@10 / coverage and the gate's decision per night
bench-quality-night: install
	$(VENV)/bin/python bench/quality_night.py --profile $(PROFILE) --nights $(NIGHTS) \
		$(if $(CONFIG),--config $(CONFIG)) $(if $(OUT),--out $(OUT)) $(BENCH_ARGS)

TIERS ?= S M L
# a whole night per scale tier through the DAG, per stage: wall time, rows/s, peak RSS
bench-scale: install
	TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/python bench/scale.py --tiers $(TIERS) \
		--out $(or $(OUT),bench/results/scale.json) $(BENCH_ARGS)

# the job code as the zip every spark-submit ships (--py-files); the DAG and bootstrap also
# build it (or reuse it) before each submit
package: install
	@$(VENV)/bin/python -c "from nightshelf import package; from nightshelf.config import \
	load_config; print(package.job_zip(load_config().home / 'dist'))"

# Airflow's own UI on the embedded home (airflow standalone): the nights `make night` ran
airflow: install
	$(NS) airflow $(if $(PORT),--port $(PORT))

ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(NIGHTSHELF_HOME)/mlflow/mlflow.db --host 127.0.0.1 --port 5000

clean-home:
	rm -rf $(NIGHTSHELF_HOME)

# ---- the docker stack (docker/compose.yaml): images, up, a night in it, down -------------
BASE_IMAGE ?= python:3.11-slim-bookworm
CA_BUNDLE ?=
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
STACK = cd docker && BASE_IMAGE=$(BASE_IMAGE) $(COMPOSE) -f compose.yaml -p $(or $(STACK_PROJECT),nightshelf)

# the images from docker/Dockerfile (runtime, airflow) and docker/postgres.Dockerfile, on
# BASE_IMAGE (where pulls are refused: BASE_IMAGE=nightshelf/base:bookworm after
# docker/base-image.sh); CA_BUNDLE: a PEM file the images trust (a TLS-inspecting proxy;
# default: the CAs this host added in /usr/local/share/ca-certificates, if any)
stack-images:
	mkdir -p docker/build
	$(if $(CA_BUNDLE),cp $(CA_BUNDLE) docker/build/extra-ca.crt,\
	  cat /usr/local/share/ca-certificates/*.crt > docker/build/extra-ca.crt 2>/dev/null || \
	  : > docker/build/extra-ca.crt)
	$(STACK) build

stack-up: stack-images
	$(STACK) up -d
	@echo "== waiting for Airflow's api-server (http://localhost:$${AIRFLOW_PORT:-8080})"
	@for i in $$(seq 120); do \
	  curl -fsS http://localhost:$${AIRFLOW_PORT:-8080}/api/v2/monitor/health >/dev/null 2>&1 && exit 0; \
	  sleep 5; done; echo "Airflow's api-server did not answer in 10 minutes: $(STACK) logs" >&2; exit 1
	@$(STACK) ps
	@echo "Airflow http://localhost:$${AIRFLOW_PORT:-8080}  MLflow http://localhost:$${MLFLOW_PORT:-5000}  Spark http://localhost:$${SPARK_UI_PORT:-8081}"

# lands a synthetic shop ending on DS if nothing landed for it, then the night through Airflow
stack-night:
	$(STACK) exec -T airflow-scheduler bash /opt/nightshelf/docker/stack-night.sh $(DS)

stack-down:
	$(STACK) down $(if $(KEEP_VOLUMES),,--volumes)

# builds the images, brings the stack up, runs a night in it, checks the lists, takes it down
test-stack: install
	$(VENV)/bin/python -m pytest -p no:cacheprovider -m stack tests/stack $(PYTEST_ARGS)
