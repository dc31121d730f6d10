# The commands a newcomer needs. `make test` is the README's test command and what CI runs.
.PHONY: test lint validate-deploy bench bench-scaling bench-smoke run fuzz upgrade-test

## Run every test (unit, engine vectors and properties, HTTP, end to end on both stores, Redis,
## the binary, hostile input, the alert rules). Installs redis-server and promtool first when
## they are missing.
test:
	scripts/ensure-redis-server
	scripts/check-alert-rules
	cargo test --locked

## A rolling upgrade against one real Redis: the previous release (built from its commit) and this
## build side by side, then this build alone; every conversation must end exactly once.
upgrade-test:
	scripts/ensure-redis-server
	python3 scripts/rolling-upgrade

## A long fuzz-style run of the hostile-input properties (200,000 cases each, optimised build).
fuzz:
	PROPTEST_CASES=200000 cargo test --locked --release --test integration hostile::fuzz::

## Formatting and lints, as CI checks them.
lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

## Validate the Dockerfile, the Helm chart, the GitHub workflows and the AWS templates offline, and
## prove that each check fails on a broken input. Installs its tools first when they are missing.
validate-deploy:
	scripts/ensure-deploy-tools
	python3 scripts/validate-deploy
	python3 scripts/validate-deploy --self-test
	python3 scripts/validate-aws
	python3 scripts/validate-aws --self-test

## The whole benchmark (a few minutes): writes BENCHMARKS.md and bench-results.json.
bench:
	scripts/ensure-redis-server
	scripts/ensure-package wrk wrk "the benchmark compares with a lighter load generator"
	cargo bench --locked --bench load

## The scaling table: service and bare endpoint pinned to N cores, wrk to the others (taskset).
bench-scaling:
	scripts/ensure-redis-server
	scripts/ensure-package wrk wrk "the scaling table is measured with wrk"
	cargo bench --locked --bench load -- --scaling

## A short run that checks correctness only (CI).
bench-smoke:
	scripts/ensure-redis-server
	cargo bench --locked --bench load -- --smoke

## Run the service locally: in-memory store, shadow mode (needs the API key in the environment).
run:
	cargo run --release
