# The commands a newcomer needs. `make test` is the README's test command and what CI runs.
.PHONY: test lint run

## Run every test (unit, engine vectors and properties, HTTP, end to end on both stores, Redis,
## the binary). Installs redis-server first when it is missing.
test:
	scripts/ensure-redis-server
	cargo test --locked

## Formatting and lints, as CI checks them.
lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

## Run the service locally: in-memory store, shadow mode (needs the API key in the environment).
run:
	cargo run --release
