# podops.gitops - make demo | make test | make lint | make unit | make integration | make sanity | make molecule | make compat | make bench | make bench-fleet
SHELL := /bin/sh
ENV := . hack/env.sh
PYTEST_ARGS ?=
BENCH_ARGS ?=
DIST ?= .work/dist
SUITE ?= trixie

.PHONY: setup demo test lint unit integration sanity molecule molecule-rootless molecule-all compat bench bench-quick bench-fleet clean lock webhook screenshots build

setup:
	@sh hack/setup.sh

demo: setup
	@sh hack/demo.sh

test: setup lint unit integration sanity bench-quick molecule compat

lint: setup
	@$(ENV); ruff check plugins tests hack benchmarks roles molecule && ruff format --check plugins tests benchmarks roles molecule
	@$(ENV); python hack/function_length.py
	@$(ENV); yamllint -s .
	@$(ENV); ansible-lint --offline -q

unit: setup
	@$(ENV); python -m pytest -p no:cacheprovider tests/unit -q $(PYTEST_ARGS)

integration: setup
	@$(ENV); python -m pytest -p no:cacheprovider tests/integration -q $(PYTEST_ARGS)

# The webhook shim alone: its unit tests, its integration tests (real shim, reconcile, role, Chromium).
webhook: setup
	@$(ENV); python -m pytest -p no:cacheprovider tests/unit/webhook tests/integration/test_webhook_gate.py \
	  tests/integration/test_webhook_hostile.py tests/integration/test_webhook_e2e.py tests/integration/test_webhook_package.py tests/integration/test_webhook_role.py tests/integration/test_webhook_broker.py \
	  tests/integration/test_webhook_status_page.py -q $(PYTEST_ARGS)

# The status page's screenshots in docs/webhook.md: taken by its browser test (Debian's Chromium, a real
# failed deploy on real podman), copied from .work/artifacts/ to docs/images/.
screenshots: setup
	@$(ENV); python -m pytest -p no:cacheprovider tests/integration/test_webhook_status_page.py -q $(PYTEST_ARGS)
	@mkdir -p docs/images && cp .work/artifacts/status-page-desktop.png .work/artifacts/status-page-phone.png docs/images/

sanity: setup
	@$(ENV); sh hack/sanity.sh

# The server scenario (molecule/default): a systemd container built with debootstrap plays a fresh Debian
# server; bootstrap, idempotence, timer, push mode over SSH. See docs/server.md. The rootless scenario
# (molecule/rootless, ~14 min: bootstrap with podops_user) is its own target, run by CI after make test
# (.ci/run) so that make test stays under an hour; `make molecule-all` runs both.
molecule: setup
	@$(ENV); MOLECULE_SCENARIO=default sh hack/molecule.sh

molecule-rootless: setup
	@$(ENV); MOLECULE_SCENARIO=rootless sh hack/molecule.sh

molecule-all: setup
	@$(ENV); MOLECULE_GLOB='molecule/*/molecule.yml' sh hack/molecule.sh

# Another platform (docs/platforms.md): the unit suite and an integration subset inside a Debian system container
# (systemd as PID 1, Debian's podman and Python), with the pinned and the newest ansible-core. SUITE=trixie
# (Debian 13: podman 5.4, Python 3.13; part of make test) or SUITE=forky (Debian testing; optional).
compat: setup
	@$(ENV); sh hack/compat.sh $(SUITE)

# The benchmark harness (not a timed test): `make bench` writes benchmarks/results/latest.{json,md};
# `make test` runs its quick mode only to keep it working.
bench: setup
	@$(ENV); python benchmarks/bench.py $(BENCH_ARGS)

bench-quick: setup
	@$(ENV); python benchmarks/bench.py --quick --out .work/bench/quick.json

# The fleet benchmark (benchmarks/fleet.py): a laptop run over real SSH to 1, 5, 10, 20 sshd-on-loopback hosts, no-op
# and one change, forks 5 and 20; writes benchmarks/results/fleet.{json,md}. FLEET_ARGS="--hosts 1,5" for fewer.
FLEET_ARGS ?=
bench-fleet: setup
	@$(ENV); python benchmarks/fleet.py $(FLEET_ARGS)

# The collection tarball users install: ansible-galaxy collection install $(DIST)/podops-gitops-<version>.tar.gz
# (galaxy.yml's build_ignore keeps .work, .venv and test output out of it). Needs only ansible-galaxy.
build:
	@$(ENV); ansible-galaxy collection build --force --output-path $(DIST) .

lock:
	python3 -m venv .work/lock-venv && .work/lock-venv/bin/pip install -q -r requirements.in && \
	  (echo "# Full pinned lock of requirements.in (make lock). Python 3.11."; .work/lock-venv/bin/pip freeze) > requirements.txt

clean:
	rm -rf .work
