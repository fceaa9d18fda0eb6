# splitbrain: two commands a newcomer needs.
#   make run   - set up, then the whole product on the bundled lab: validation, chaos
#                (a smoke scenario of each family), then the audit, Allure and JUnit reports
#   make test  - set up, then run the whole test suite
#   make test-fast - the unit tier only (no process, socket peer or namespace): the inner loop
# Everything else here is what those two need.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Real peers the tests talk to (installed when run as root; tests that need a
# missing one skip and name the package).
# chromium is the headless browser the report tests open the reports in.
DEBIAN_PACKAGES := tgt libiscsi-bin openssh-server nftables iproute2 procps strace libpcap0.8 iputils-ping chromium mono-mcs
# The Allure 3 report needs Node.js >= 20 (reports/package.json pins the CLI);
# Debian's nodejs and npm are installed only when there is no node at all.
NODE_MIN := 20
ALLURE_STAMP := reports/node_modules/.installed

.PHONY: run test test-fast zoo defect-zoo-doc venv debian-packages allure lint bench clean

# One folder per make run: validation/ and chaos/ results, report/ built from both.
RUN_DIR := reports/run-$(shell date -u +%Y%m%dT%H%M%SZ)
# One smoke scenario of each chaos family keeps make run within 5 minutes; the whole
# smoke profile (every scenario, its chaos part ~5 min here): make run RUN_CHAOS="--profile smoke".
RUN_SCENARIOS := sync-blackhole,primary-kill,path-one,split-brain-heal-late,kill-survivor-during-resync,power-loss-secondary,disk-eio-secondary
RUN_CHAOS ?= --scenario $(RUN_SCENARIOS)

run: venv debian-packages allure
	@sb=$(VENV)/bin/splitbrain; dir=$(RUN_DIR); \
	echo "== 1/3 validation (results in $$dir/validation)"; \
	$$sb validate --results $$dir/validation; validation=$$?; \
	if [ $$validation -ge 128 ]; then exit $$validation; fi; \
	echo "== 2/3 chaos (results in $$dir/chaos)"; \
	$$sb chaos $(RUN_CHAOS) --output $$dir/chaos; chaos=$$?; \
	if [ $$chaos -ge 128 ]; then exit $$chaos; fi; \
	echo "== 3/3 reports"; \
	$$sb report $$dir/validation $$dir/chaos --out $$dir/report; report=$$?; \
	echo; \
	echo "validation exit $$validation, chaos exit $$chaos, report exit $$report (1 = something failed: see the report)"; \
	if [ $$report -le 3 ]; then echo "open $$dir/report/audit.html"; else echo "no report was made"; fi; \
	[ $$validation -eq 0 ] && [ $$chaos -eq 0 ] && [ $$report -eq 0 ]

test: venv debian-packages allure
	$(PY) -m pytest $(PYTEST_ARGS)

# the defect zoo: every defect against the suite that must catch it (about half an hour);
# defect-zoo-doc regenerates docs/defect-zoo.md
zoo: venv debian-packages
	SPLITBRAIN_ZOO=1 $(PY) -m pytest tests/zoo $(PYTEST_ARGS)

defect-zoo-doc: venv debian-packages
	$(PY) -m tests.zoo.matrix

# Unit tests start no process, socket peer or namespace (tests/unit/conftest.py refuses
# them) and none is marked slow: under a minute. The import-layer and cycle checks run here.
test-fast: venv
	$(PY) -m pytest tests/unit -q -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "error: '$(PYTHON) -m venv' failed; install python3-venv" >&2; exit 1; fi; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

debian-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "not root: tests that need these Debian packages will skip: $$missing"; \
	fi

# The Allure 3 command line (npm ci from reports/package-lock.json). Without a
# recent enough Node.js this says so and goes on: the audit report needs no Node.
allure: $(ALLURE_STAMP)

$(ALLURE_STAMP): reports/package.json reports/package-lock.json
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: nodejs npm"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; \
	  else echo "not root and no Node.js/npm: no Allure report (the audit report does not need it)"; exit 0; fi; \
	fi; \
	major=$$(node -p 'process.versions.node.split(".")[0]'); \
	if [ "$$major" -lt $(NODE_MIN) ]; then \
	  echo "Node.js $$major is older than $(NODE_MIN): no Allure report (the audit report does not need it)"; exit 0; \
	fi; \
	cd reports && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed \
	  || { echo "npm ci failed in reports/: no Allure report (the audit report does not need it)"; exit 0; }

lint: venv
	$(VENV)/bin/ruff check harness fixtures suites tests bench
	$(VENV)/bin/lint-imports --no-cache

# Every benchmark with its default settings; each prints what it measured, and the
# ones that take --write update their section of bench/RESULTS.md when asked to.
bench: venv debian-packages
	@for b in bench/*.py; do \
	  case $$b in bench/recording.py) continue;; esac; \
	  echo "== $$b"; $(PY) $$b || exit 1; \
	done

clean:
	rm -rf $(VENV) reports/node_modules reports/allure-results reports/html .pytest_cache
