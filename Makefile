# fastzk developer tasks.  `make test` is what CI runs (.ci/run).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
ZOOKEEPER_JAR := /usr/share/java/zookeeper.jar
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all zookeeper deps build test bench

all: test

# Debian's ZooKeeper 3.8 (Java 17): the tests run it, never a mock.
zookeeper:
	@if [ ! -f $(ZOOKEEPER_JAR) ]; then \
		echo "installing Debian's zookeeper"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y zookeeper; \
	else \
		echo "zookeeper present: $(ZOOKEEPER_JAR)"; \
	fi

deps:
	$(PIP) install kazoo==2.11.0 pytest hypothesis pytest-benchmark cython

build:
	$(PYTHON) setup.py build_ext --inplace

# Twice: with the compiled core (required), then pure Python.
test: zookeeper deps build
	FASTZK_REQUIRE_EXTENSIONS=1 $(PYTHON) -m pytest tests -q
	FASTZK_NO_EXTENSIONS=1 $(PYTHON) -m pytest tests -q

bench:
	$(PYTHON) -m pytest benchmarks -q
