# The two commands a newcomer needs: `make demo` opens the dashboard on a private demo database;
# `make test` is what CI runs (.ci/run) on a fresh machine: it installs PostgreSQL 15 + pgvector
# (and tmux) when missing, then lints and runs every test.

CARGO ?= cargo

.PHONY: demo test setup lint bench-pool bench-check bench-dashboard bench-serve screenshots

demo: setup
	$(CARGO) run --release --locked -- demo

test: setup lint
	# The example programs as plain binaries: crates/pgvigil/tests/embed.rs runs the library's
	# embed example, tests/documents_api.rs the docs-api program.
	$(CARGO) build --workspace --bins --examples --locked
	$(CARGO) test --workspace --all-targets --locked
	$(CARGO) test --workspace --doc --locked

setup:
	bash scripts/setup-postgres.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

bench-pool: setup
	bash scripts/bench-pool.sh

bench-check: setup
	bash scripts/bench-check.sh

bench-serve: setup
	bash scripts/bench-serve.sh

bench-dashboard: setup
	bash scripts/bench-dashboard.sh

screenshots: setup
	bash scripts/screenshots.sh
