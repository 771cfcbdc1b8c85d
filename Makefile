# kiln — common tasks. `make demo` renders the example repo, `make test`
# installs the checkers the tests use and runs every test.
CARGO ?= cargo
SHELL := /bin/bash
export CARGO_PROFILE_DEV_DEBUG = 0

.PHONY: demo build test lint bench bench-serve bench-peers deps fresh-check deny sbom fuzz

build:
	$(CARGO) build --release

demo: build
	./target/release/kiln render
	./target/release/kiln render --check

# Installs the checkers the tests run against, then runs every test.
test: deps
	@mkdir -p target
	$(CARGO) test --workspace --no-fail-fast 2>&1 | tee target/test.log; exit $${PIPESTATUS[0]}

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The external checkers the tests run against (Debian and PyPI packages).
deps:
	bash .ci/deps

bench: build
	bash bench/run.sh

bench-serve: build
	bash .ci/bench-deps
	bash bench/serve.sh

bench-peers: build
	bash bench/peers.sh

# The README's two commands in a fresh clone of HEAD, with an empty target
# directory and a new HOME (the toolchain stays where rustup put it), timed.
# Catches what works here only because of something left on this machine.
# PURGE=1 also removes what .ci/deps installs before `make test`, so that
# the installs are tested too (it changes the machine for everyone on it).
PURGE ?=
fresh-check:
	KILN_FRESH_PURGE=$(PURGE) bash .ci/fresh-check

# Supply chain: licences, bans of duplicate versions and sources (crates.io
# only) with cargo-deny, per deny.toml. The advisories check needs the
# RustSec database from GitHub, which this project's machines cannot reach:
# it is skipped, and said so.
deny:
	@command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
	@echo "cargo deny: advisories skipped (the RustSec advisory database on GitHub is not reachable from here)"
	cargo deny check licenses bans sources

# A CycloneDX SBOM of every crate of the workspace, as target/sbom/*.cdx.json.
sbom:
	@command -v cargo-cyclonedx >/dev/null || cargo install --locked cargo-cyclonedx
	cargo cyclonedx --format json --all-features
	@mkdir -p target/sbom
	@for f in $$(find . crates -maxdepth 2 -name '*.cdx.json' -not -path './target/*'); do mv "$$f" target/sbom/; done
	@ls target/sbom

# The fuzz targets (property-based, stable Rust; see docs/security.md) with
# many more inputs than the test suite gives them. FUZZ_CASES per target.
FUZZ_CASES ?= 1000000
fuzz:
	KILN_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release -p kiln-compiler fuzz
	KILN_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release -p kiln-executor fuzz
	KILN_FUZZ_CASES=$$(( $(FUZZ_CASES) / 10 )) $(CARGO) test --release --test fuzz_http
