# kiln — common tasks. `make demo` renders the example, `make test` runs
# every test (the checkers they need are installed by .ci/run).
CARGO ?= cargo
export CARGO_PROFILE_DEV_DEBUG = 0

.PHONY: demo build test lint check bench deps

build:
	$(CARGO) build --release

demo: build
	./target/release/kiln render
	./target/release/kiln render --check

test:
	$(CARGO) test --no-fail-fast 2>&1 | tee target/test.log
	@grep -E '^test result:' target/test.log | awk '{p+=$$4; f+=$$6; i+=$$8} END {printf "%d passed, %d failed, %d skipped\n", p, f, i}'

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The external checkers the tests run against (Debian and PyPI packages).
deps:
	bash .ci/deps

bench: build
	bash bench/run.sh
