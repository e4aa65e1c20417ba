# podops.gitops - make demo | make test | make lint | make unit | make integration | make sanity
SHELL := /bin/sh
ENV := . hack/env.sh
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit integration sanity clean lock

setup:
	@sh hack/setup.sh

demo: setup
	@sh hack/demo.sh

test: setup lint unit integration sanity

lint: setup
	@$(ENV); ruff check plugins tests hack benchmarks && ruff format --check plugins tests benchmarks
	@$(ENV); yamllint -s .
	@$(ENV); ansible-lint --offline -q

unit: setup
	@$(ENV); python -m pytest -p no:cacheprovider tests/unit -q $(PYTEST_ARGS)

integration: setup
	@$(ENV); python -m pytest -p no:cacheprovider tests/integration -q $(PYTEST_ARGS)

sanity: setup
	@$(ENV); sh hack/sanity.sh

lock:
	python3 -m venv .work/lock-venv && .work/lock-venv/bin/pip install -q -r requirements.in && \
	  (echo "# Full pinned lock of requirements.in (make lock). Python 3.11."; .work/lock-venv/bin/pip freeze) > requirements.txt

clean:
	rm -rf .work
