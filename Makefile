# Entry points for people and CI. Every target installs what it needs first.
.PHONY: demo demo-down test check docs bench bench-cluster bench-day2 bench-snapshot fuzz deps build release

CARGO ?= cargo
export CHECKPOINT_DISABLE = 1

deps:
	acceptance-tests/install-deps

build: deps
	$(CARGO) build -p terraform-provider-etcd

# A real run of the provider: see acceptance-tests/demo.
demo: build
	acceptance-tests/demo up

demo-down:
	acceptance-tests/demo down

# Unit tests, then acceptance tests (real terraform, sshd, systemd, etcd).
test: build
	$(CARGO) test --workspace -- --test-threads=2

# Formatting and lints, as before every commit.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Release files in dist/ (zip, manifest, SHA256SUMS; signed when GPG_KEY_ID
# names an RSA key): see provider/release.
release: deps
	provider/release dist

# Regenerates schemas/schema.json and docs/ from the built provider.
docs: build
	$(CARGO) run -q -p acceptance-tests --bin generate-docs

bench: build
	acceptance-tests/install-deps --bench
	$(CARGO) build --release -p terraform-provider-etcd
	benches/startup-and-memory

# Bootstrap time against a shell script doing the runbook steps, and the
# time of a no-change plan on five members.
bench-cluster: build
	$(CARGO) build --release -p terraform-provider-etcd
	benches/cluster-apply

# Day-2 changes (roll, scale-out, renewal, plan) against their shell and
# Terraform floors, with a writer that must lose nothing.
bench-day2: build
	$(CARGO) build --release -p terraform-provider-etcd
	benches/day2-changes

# Peak RSS and time of snapshot, plan and restore with a 256 MiB keyspace.
bench-snapshot: build
	$(CARGO) build --release -p terraform-provider-etcd
	benches/snapshot-memory

fuzz:
	benches/fuzz-decoder
