# The testbed's set-up and entry points. Every target is idempotent and runs as root.
#   make demo   set up everything, then a quick skew sweep (plot + table)
#   make test   set up everything, then lint and the whole test suite
#   make report set up everything, then the report's sweeps (QUICK=1: the ~13-minute one)
# The set-up steps are targets of their own: apt, venv, ovs (make setup = all three).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := mininet openvswitch-switch python3-venv python3-pip python-is-python3 \
                iproute2 net-tools ethtool make git redis-server tshark
OVS_CTL := /usr/share/openvswitch/scripts/ovs-ctl

.PHONY: setup apt venv ovs demo report test lint unit emulation clean-results

setup: apt venv ovs

# Debian packages: only touch apt when one is missing (keeps reruns fast and offline).
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Mininet comes from Debian's python3-mininet, so the venv sees system site-packages;
# its own packages are pinned in requirements.txt and take precedence.
$(VENV)/.installed: requirements.txt setup.cfg pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

venv: apt $(VENV)/.installed

# Start Open vSwitch without systemd when it is not running (containers, CI).
ovs: apt
	@ovs-vsctl --timeout=5 show >/dev/null 2>&1 || $(OVS_CTL) start --system-id=random

demo: setup
	$(PY) experiments/skew_sweep.py --quick

# Every figure and table the README quotes, into results/report/<timestamp>/.
report: setup
	$(PY) experiments/report.py $(if $(QUICK),--quick)

# Style (ruff) and the architecture's layers (import-linter's contracts in pyproject.toml).
lint: venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# Unit tests need neither root nor a network (a user without privileges can run them).
unit: venv
	$(PY) -m pytest -q tests/unit

emulation: setup
	$(PY) -m pytest -q tests/emulation

test: setup lint
	$(PY) -m pytest -q tests

clean-results:
	rm -rf results
