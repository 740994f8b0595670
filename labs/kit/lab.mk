# Included by every lab's Makefile (like p4lang/tutorials' utils/Makefile). As root:
#   make run             the lab's pipeline on a real network, then the Mininet CLI
#   make check           grade your code in this folder (one line per failure)
#   make solution-check  the same grading on solution/
#   make measure         the measurement the lab asks for (labs that ask for one)
# Each target first runs the testbed's set-up (idempotent: fast when it is done).
# RESULTS=DIR puts the results folders under DIR instead of the checkout's results/.

LAB_DIR := $(abspath $(dir $(firstword $(MAKEFILE_LIST))))
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
PY := $(ROOT)/.venv/bin/python
KIT := $(PY) -m labs.kit
KIT_ARGS := $(if $(RESULTS),--results-dir $(RESULTS))

.PHONY: run check solution-check measure setup

setup:
	@$(MAKE) --no-print-directory -s -C $(ROOT) setup

run: setup
	@$(KIT) run $(LAB_DIR) $(KIT_ARGS)

check: setup
	@$(KIT) check $(LAB_DIR) $(KIT_ARGS)

solution-check: setup
	@$(KIT) check $(LAB_DIR) --solution $(KIT_ARGS)

measure: setup
	@$(KIT) measure $(LAB_DIR) $(KIT_ARGS)
