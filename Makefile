# The two commands: `make dev` serves the API locally, `make test` builds and checks all.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Not --quiet: a first run compiles for minutes, and cargo's progress says so.
DEV := $(CARGO) run -p bookshelf-devserver --bin bookshelf-dev --
# One test runner: nextest when installed (process per test), cargo test otherwise.
TEST_RUNNER := $(shell if $(CARGO) nextest --version >/dev/null 2>&1; then echo "nextest run --no-fail-fast"; else echo "test --no-fail-fast"; fi)
# Python tools (cfn-lint, sam) live in a private virtualenv made by scripts/ensure-tools.sh.
export BOOKSHELF_TOOLS_VENV ?= $(HOME)/.cache/bookshelf/venv
export PATH := $(BOOKSHELF_TOOLS_VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= eu-west-1

.PHONY: scale pooler dev test hurl lambda-check docs-check deny lint sqlx-prepare fmt build tools keys admin seed deploy-check deploy-tests sam-local bench functions

## Serve the whole API on http://127.0.0.1:$${PORT:-3000}
dev:
	@scripts/ensure-postgres.sh
	$(DEV) serve

## Build and run every check and test
test: tools lint build
	$(DEV) with-postgres -- $(CARGO) $(TEST_RUNNER) --workspace
	$(DEV) with-postgres -- scripts/contract-fuzz.sh
	$(DEV) with-postgres -- scripts/hurl-suites.sh
	$(DEV) with-postgres -- scripts/pooler-stage.sh
	$(DEV) with-postgres -- scripts/browser-check.sh
	$(DEV) with-postgres -- scripts/lambda-dev-check.sh
	$(DEV) with-postgres -- scripts/sam-local.sh

## sam build + sam local invoke of every sample event + sam local start-api with the hurl
## suites, in Docker (in make test; skipped, saying so, when no Docker engine answers)
sam-local: tools build
	$(DEV) with-postgres -- scripts/sam-local.sh

## The HTTP tests and hurl suites through PgBouncer in transaction mode, as RDS Proxy multiplexes (in make test)
pooler: tools build
	$(DEV) with-postgres -- scripts/pooler-stage.sh

## GET /docs in headless Chromium: renders, "Try it out" answers, no other host (in make test)
docs-check: tools build
	$(DEV) with-postgres -- scripts/browser-check.sh

## cargo lambda watch + cargo lambda invoke --data-file for every sample event (in make test)
lambda-check: tools build
	$(DEV) with-postgres -- scripts/lambda-dev-check.sh

## The hurl suites (tests/hurl/) against a running `make dev` (or HURL_BASE)
hurl:
	HURL_BASE=$${HURL_BASE:-http://127.0.0.1:$${PORT:-3000}} scripts/hurl-suites.sh

tools:
	@scripts/ensure-tools.sh

lint: tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/sqlx-prepare.sh --check
	scripts/deny.sh
	sam validate --lint --template template.yaml
	scripts/deploy-tests.sh

## Regenerate .sqlx/ (the query macros' view of the schema) after changing a query or a migration
sqlx-prepare:
	scripts/sqlx-prepare.sh

## Dependency policy (deny.toml): licences, bans, sources; advisories when the database is reachable
deny:
	scripts/deny.sh

# Not --quiet: a first build takes minutes, and cargo's progress says so.
build:
	$(CARGO) build --workspace --all-targets

fmt:
	$(CARGO) fmt --all

## Add demo books (N=10000) to the database of a running `make dev` (or DATABASE_URL);
## READERS=R adds R readers with a year of reading each (5,000 reads, 20,000 sessions)
seed:
	$(DEV) seed $${N:-10000} --readers $${READERS:-0}

## Benchmarks (release build, wrk, cold starts, order pipeline, sizes, criterion) → BENCHMARKS.md
bench:
	scripts/bench.sh

## The deployed shape under load: N=50/200/500 function environments (release binaries under
## the Lambda Runtime Interface Emulator) through PgBouncer (20 connections) → BENCHMARKS.md
scale:
	scripts/scale.sh

## The deployed stack, proved offline: SAM transform assertions, moto CloudFormation, checkov
deploy-tests: tools
	scripts/deploy-tests.sh

## Lint and validate the template offline, sam build every function, report artifact sizes
deploy-check:
	scripts/deploy-check.sh

## Regenerate functions/Cargo.toml, functions/bin/ and the watch routes from template.yaml
functions:
	$(DEV) functions

## Print fresh signing keys and their JWK Set, for the deploy secrets
keys:
	$(DEV) keys

## Ensure the admin from BOOKSHELF_ADMIN_EMAIL/PASSWORD exists in DATABASE_URL; an existing
## account only with PROMOTE=<that email> (it then loses every session)
admin:
	$(DEV) create-admin $${PROMOTE:+--promote $$PROMOTE}
