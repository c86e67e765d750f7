# `make run` and `make test` work on a fresh machine: both set up the virtualenv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test check mutate flakes bench abuse soak up down clean
AXE := .node/node_modules/axe-core/axe.min.js

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Local runs also take push subscriptions on an http:// loopback endpoint (a local push service); set it to 0 to refuse.
# `make run STREAMS=3` serves Gossip from three processes on the one port, each with its share of the feeds
# (dev/replicas.py); `make up STREAMS=3` scales the stream service in Docker. The recipe's shell becomes Gossip (exec),
# which stops when make does (--parent), even if make is killed outright.
STREAMS ?= 1
run: $(VENV)/installed
	exec env PUSH_ALLOW_HTTP_LOOPBACK=$${PUSH_ALLOW_HTTP_LOOPBACK-1} $(PY) -m dev.run --streams $(STREAMS) --parent $$PPID

# axe-core for the accessibility test, from npm into the git-ignored .node/ (major version pinned). Without npm the
# test skips and says why (and fails under CI, where .ci/run installs npm first).
$(AXE):
	if command -v npm >/dev/null 2>&1; then npm install --silent --no-save --prefix .node axe-core@4; fi

# Every check, then every test: what the README tells a newcomer to run, and what .ci/run runs.
test: check $(AXE)
	$(PY) -m pytest

# Lint, format, strict types and the import layering, alone: what the pre-commit hook runs.
check: $(VENV)/installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml), outside `make test`: it takes a while. Each
# mutant runs the tests that reach its function, under mutmut's time limit; `mutmut show NAME` shows a survivor.
mutate: $(VENV)/installed
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

# The whole suite FLAKE_RUNS times in a row beside `stress-ng --cpu FLAKE_CPUS` (apt-get install stress-ng), then the
# tests that failed in any run, counted (bench/flakes.sh): a test that fails only on a busy machine races the clock.
FLAKE_RUNS ?= 3
FLAKE_CPUS ?= 2
flakes: check $(AXE)
	bench/flakes.sh $(FLAKE_RUNS) $(FLAKE_CPUS)

$(VENV)/bench-installed: $(VENV)/installed
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The machine's floor, then six load scenarios against the real services on loopback, three of them side by side with
# nginx's nchan (installed from Debian's packages if missing and the machine allows); a line each, BENCHMARKS.md and
# the charts under bench/charts/.
bench: $(VENV)/bench-installed
	$(PY) -m bench

# One person with a script against what `make run` serves: floods of logins, registrations, feeds, publishes,
# stalled feeds, malformed requests, hostile documents in MongoDB and a resume loop, a line each with its target
# (bench/abuse.py).
abuse: $(VENV)/bench-installed
	$(PY) -m bench abuse

# The real topology in Docker: needs a .env with SECRET_KEY (see .env.example). `make up STREAMS=3` scales the feeds.
up:
	docker compose up --build --detach --wait --scale stream=$(STREAMS)

down:
	docker compose down

clean:
	rm -rf $(VENV) var .node

# Gossip as `make run` serves it, for SOAK_MINUTES under churn: clients that reconnect with Last-Event-ID, publishers,
# a login churn; a line a minute, then met or NOT met for flat memory, a steady publish rate, and every client caught
# up (bench/soak.py). SOAK_TRACE=1 also prints what grew in the service's memory (slow).
SOAK_CLIENTS ?= 1000
SOAK_MINUTES ?= 20
SOAK_WARMUP ?= 5
SOAK_PUBLISH_RATE ?= 10
SOAK_LOGIN_EVERY ?= 2
soak: $(VENV)/bench-installed
	$(PY) -m bench soak --clients $(SOAK_CLIENTS) --minutes $(SOAK_MINUTES) --warmup $(SOAK_WARMUP) \
		--publish-rate $(SOAK_PUBLISH_RATE) --login-every $(SOAK_LOGIN_EVERY) $(if $(SOAK_TRACE),--trace)
