# Two commands: `make demo` (set up the virtualenv, run the demo), `make test` (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

# The system (Debian) packages the demo and the tests use: the one list, add to it here.
# `make demo` and `make test` install the missing ones first when run as root with apt-get.
#   python3-venv                 `python3 -m venv` fails on Debian without it
#   gcc libc6-dev python3-dev    the compiled (mypyc) dataplane
#   iproute2 iputils-ping iperf3 tcpdump   the live-switch tests (`ip netns exec`, traffic)
#   vde2 openvswitch-switch      the peers vswitch-bench peers and its tests run against
#   qemu-system-x86              the real-VM tests
#   tcpreplay tshark             a generated trace sent by tcpreplay, its checksums checked by Wireshark;
#                                what vswitch-bench replay --live is compared with (replay-bench, its tests)
SYSTEM_PACKAGES := python3-venv gcc libc6-dev python3-dev iproute2 iputils-ping iperf3 tcpdump \
                   vde2 openvswitch-switch qemu-system-x86 tcpreplay tshark

.PHONY: demo test test-compiled test-pure compile pure lint bench clean system-deps docs-graphs docs-experiments

# One dpkg-query when everything is installed (no apt-get update).  Not root, or no apt-get
# (or no dpkg): says what is missing and goes on; a test whose tool is missing skips, saying why.
# `make test SYSTEM_PACKAGES=` skips the step.
system-deps:
	@[ -n "$(strip $(SYSTEM_PACKAGES))" ] || exit 0; \
	if ! command -v dpkg-query >/dev/null; then \
	    echo "make: no dpkg-query: cannot check the system packages the demo and tests use ($(strip $(SYSTEM_PACKAGES))); going on"; \
	    exit 0; \
	fi; \
	have=$$(dpkg-query -W -f='$${Package} $${db:Status-Abbrev}\n' $(SYSTEM_PACKAGES) 2>/dev/null \
	        | awk 'substr($$2, 2, 1) == "i" {print $$1}'); \
	missing=$$(for p in $(SYSTEM_PACKAGES); do echo "$$have" | grep -qx "$$p" || echo "$$p"; done | xargs); \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing the system packages the demo and tests use: $$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 \
	          $$missing >/dev/null; } \
	        || echo "make: WARNING: apt-get could not install $$missing (see above); going on without them"; \
	else \
	    echo "make: missing system packages: $$missing; going on without them (the tests that need them skip," \
	         "saying why). To install them, as root: apt-get install $$missing"; \
	fi

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77'
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The hot-path modules compiled in place with mypyc (vswitch/compiled.py); rebuilt only when
# a source changed.  A missing or stale build is never used: those modules then run from source.
compile: $(VENV)/.installed
	$(PY) -m vswitch.mypyc_build ensure

pure:
	rm -rf build *__mypyc.*.so $$(find vswitch nicmodel sriov -name '*.so')

# The demo runs compiled where a C compiler is at hand, interpreted otherwise.
demo: $(VENV)/.installed
	-@$(PY) -m vswitch.mypyc_build ensure
	$(VENV)/bin/vswitch-bench demo

# The suite runs twice: on the compiled dataplane, then on the same modules from source; the
# second run happens whatever the first gave, and the end says how each went (exit 1 if either
# failed).  Without a C compiler the first run is interpreted too, and says so.
# (The halves run as sub-makes with the system-package step already done: SYSTEM_PACKAGES=.)
test: $(VENV)/.installed
	@$(MAKE) --no-print-directory SYSTEM_PACKAGES= test-compiled; compiled=$$?; \
	$(MAKE) --no-print-directory SYSTEM_PACKAGES= test-pure; pure=$$?; \
	word() { [ "$$1" = 0 ] && echo passed || echo FAILED; }; \
	echo "=== make test: test-compiled $$(word $$compiled), test-pure (interpreted) $$(word $$pure)"; \
	[ $$compiled = 0 ] && [ $$pure = 0 ]

test-compiled: $(VENV)/.installed
	@$(PY) -m vswitch.mypyc_build ensure || echo "WARNING: no mypyc build (see above): this run is interpreted"
	@echo "=== test-compiled: dataplane $$($(PY) -m vswitch.mypyc_build status)"
	$(PY) -m pytest

test-pure: $(VENV)/.installed
	@echo "=== test-pure (VSWITCH_PURE=1): dataplane $$(VSWITCH_PURE=1 $(PY) -m vswitch.mypyc_build status); tests marked once ran in test-compiled"
	VSWITCH_PURE=1 $(PY) -m pytest -m "not once"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: compile
	$(VENV)/bin/vswitch-bench switch

# The pictures of the dataplane graph in docs/graphs (docs/architecture.md), remade from the
# topologies beside them.  Needs Graphviz's dot (apt-get install graphviz); the tests do not.
docs-graphs: $(VENV)/.installed
	$(PY) docs/graphs/generate.py

clean: pure
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The built-in experiments' PNGs in docs/experiments/ (each built-in run as shipped; a few minutes
# on two shared cores): `make docs-experiments`.
BUILTIN_EXPERIMENTS = linerate cpu-ceiling vmdq-scaling sriov-scaling latency-order coalescing ring-overflow \
	isolation shaping bufferbloat
docs-experiments: $(VENV)/.installed
	@mkdir -p docs/experiments
	@for n in $(BUILTIN_EXPERIMENTS); do \
	    VSWITCH_PURE=1 $(VENV)/bin/vswitch-bench experiment $$n --out build/experiments/$$n -q || exit 1; \
	    cp build/experiments/$$n/*.png docs/experiments/; \
	done
