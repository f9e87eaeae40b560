# The two commands a newcomer needs. `make test` is what CI runs (.ci/run) on a fresh machine:
# it installs PostgreSQL 15 + pgvector when missing, then lints and runs every test.

CARGO ?= cargo

.PHONY: test setup lint unit bench-pool

test: setup lint
	$(CARGO) test --all-targets --locked

setup:
	bash scripts/setup-postgres.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

bench-pool: setup
	bash scripts/bench-pool.sh
