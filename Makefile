# fastzk developer tasks.  `make test` is what CI runs (.ci/run).
#
# Everything runs in the project's own virtual environment (.venv), made
# from the first python3 on PATH: a distribution's python3 is externally
# managed (PEP 668) and refuses pip.  `make test PYTHON=/path/to/python`
# uses that interpreter as it is instead, making no environment.
BASE_PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
PYTHON ?= $(VENV)/bin/python
PIP ?= $(PYTHON) -m pip
ZOOKEEPER_JAR := /usr/share/java/zookeeper.jar
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

ZOOKEEPER_C_HEADER := /usr/include/zookeeper/zookeeper.h

.PHONY: all venv zookeeper zookeeper-c deps build typecheck test kazoo-suite bench

all: test

# The virtual environment, and what building the compiled core needs from
# the system: Debian's python3 lacks ensurepip (python3-venv) and the C
# headers (python3-dev) until they are installed.
venv:
ifeq ($(PYTHON),$(VENV)/bin/python)
	@if [ ! -x $(PYTHON) ]; then \
		if ! $(BASE_PYTHON) -c "import ensurepip, venv" 2>/dev/null; then \
			echo "installing Debian's python3-venv"; \
			$(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; \
		fi; \
		rm -rf $(VENV); \
		$(BASE_PYTHON) -m venv $(VENV); \
	fi
endif
	@if ! $(PYTHON) -c "import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then \
		echo "installing Debian's python3-dev and a C compiler"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y python3-dev gcc; \
	fi

# Debian's ZooKeeper 3.8 (Java 17): the tests run it, never a mock.
zookeeper:
	@if [ ! -f $(ZOOKEEPER_JAR) ]; then \
		echo "installing Debian's zookeeper"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y zookeeper; \
	else \
		echo "zookeeper present: $(ZOOKEEPER_JAR)"; \
	fi

# MIT Kerberos for the GSSAPI tests (fastzk.testing.kdc runs a throwaway
# KDC): krb5kdc and kdb5_util, kadmin.local, kinit; libkrb5-dev and gcc
# build the gssapi package from source.  `deps` (so `test`) needs it.
KERBEROS_PACKAGES := krb5-kdc krb5-admin-server krb5-user libkrb5-dev gcc
.PHONY: kerberos
kerberos:
	@if [ ! -x /usr/sbin/krb5kdc ] || [ ! -x /usr/sbin/kadmin.local ] || \
	    ! command -v kinit >/dev/null || ! command -v krb5-config >/dev/null; then \
		echo "installing Debian's MIT Kerberos: $(KERBEROS_PACKAGES)"; \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y $(KERBEROS_PACKAGES); \
	else \
		echo "MIT Kerberos present: /usr/sbin/krb5kdc"; \
	fi

# ZooKeeper's own C client: the benchmark's reference for synchronous reads.
zookeeper-c:
	@if [ ! -f $(ZOOKEEPER_C_HEADER) ]; then \
		echo "installing Debian's libzookeeper-mt-dev"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y libzookeeper-mt-dev; \
	else \
		echo "ZooKeeper C client present: $(ZOOKEEPER_C_HEADER)"; \
	fi

deps: venv kerberos
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install kazoo==2.11.0 pytest pytest-timeout hypothesis pytest-benchmark cython mypy==2.4.1
	# The asyncio benchmark's comparison, and uvloop (the asyncio tests run
	# on it too; the benchmark has uvloop rows).
	$(PIP) install aiozk==0.32.0 uvloop
	# kazoo's own suite (run against fastzk below) needs these.
	$(PIP) install "pyOpenSSL<24.3" pyjks objgraph
	# The TLS and SASL tests: their certificates, kazoo's SASL, and GSSAPI.
	$(PIP) install cryptography pure-sasl gssapi

build:
	$(PYTHON) setup.py build_ext --inplace

# mypy, configured in pyproject.toml: strict, except the modules of its
# ratchet list.
typecheck: deps
	$(PYTHON) -m mypy

# Twice: with the compiled core (required), then pure Python; the asyncio
# client's tests again on uvloop's event loop; then kazoo's own test suite
# with fastzk's client swapped in.
test: zookeeper deps build typecheck
	FASTZK_REQUIRE_EXTENSIONS=1 $(PYTHON) -m pytest tests -q
	FASTZK_NO_EXTENSIONS=1 $(PYTHON) -m pytest tests -q
	FASTZK_REQUIRE_EXTENSIONS=1 FASTZK_TEST_UVLOOP=1 $(PYTHON) -m pytest -q tests/test_aio_*.py
	$(MAKE) kazoo-suite

# kazoo 2.11's suite (shipped in its wheel) against fastzk.KazooClient.  It
# starts its own 3-server ensemble from Debian's jar.  Deselected: the
# white-box tests of kazoo's ConnectionHandler class, which fastzk
# replaces, and the test
# that asserts kazoo #153 (a ChildrenWatch stopping when its node is
# deleted), which fastzk fixes.
KAZOO_TESTS = $(shell $(PYTHON) -c "import kazoo.tests, os; print(os.path.dirname(kazoo.tests.__file__))" 2>/dev/null)
kazoo-suite:
	cd /tmp && PYTHONPATH=$(CURDIR):$(CURDIR)/tests/kazoo_suite \
	ZOOKEEPER_VERSION=3.8.0 \
	ZOOKEEPER_CLASSPATH=/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar \
	FASTZK_REQUIRE_EXTENSIONS=1 \
	$(PYTHON) -m pytest -p fastzk_swap -p no:cacheprovider -q --timeout 180 \
		$(KAZOO_TESTS) \
		-k "not TestConnectionHandler and not TestUnorderedXids and not test_no_such_node_for_children_watch"

# fastzk vs kazoo 2.11 side by side: one table of ratios, and
# benchmarks/results.json.  About 10-15 minutes; BENCH_ARGS=--quick for a
# 2-3 minute smoke run (see python benchmarks/run.py --help).
bench: zookeeper zookeeper-c deps build
	$(PYTHON) benchmarks/run.py $(BENCH_ARGS)

# Release artifacts built and proven on this machine (tools/wheels.sh): the
# sdist; a manylinux wheel for each CPython 3.9-3.13 (pyenv's, or
# WHEEL_PYTHONS="/path/to/python3.9 ..."), repaired by auditwheel; each
# installed in a fresh virtual environment of its own Python and tested
# from outside the source tree against a real ZooKeeper; the sdist installed
# with and without a C compiler.  Output and logs in build/wheels/.
WHEEL_PYTHONS ?=
.PHONY: wheels
wheels: zookeeper
	WHEEL_PYTHONS="$(WHEEL_PYTHONS)" bash tools/wheels.sh
