# kiln — common tasks. `make demo` renders the example repo, `make test`
# installs the checkers the tests use and runs every test.
CARGO ?= cargo
SHELL := /bin/bash
export CARGO_PROFILE_DEV_DEBUG = 0

.PHONY: demo build test lint bench bench-serve deps fresh-check

build:
	$(CARGO) build --release

demo: build
	./target/release/kiln render
	./target/release/kiln render --check

# Installs the checkers the tests run against, then runs every test.
test: deps
	@mkdir -p target
	$(CARGO) test --no-fail-fast 2>&1 | tee target/test.log; exit $${PIPESTATUS[0]}

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The external checkers the tests run against (Debian and PyPI packages).
deps:
	bash .ci/deps

bench: build
	bash bench/run.sh

bench-serve: build
	bash bench/serve.sh

# The README's two commands in a fresh clone of HEAD, with an empty target
# directory and a new HOME (the toolchain stays where rustup put it), timed.
# Catches what works here only because of something left on this machine.
fresh-check:
	bash .ci/fresh-check
