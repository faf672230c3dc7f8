#!/usr/bin/env bash
# The one command that is CI (and the README's test command): formatting, lints with warnings
# denied, then every test of the workspace. `.ci/run` installs system packages and calls this.
set -euo pipefail
cd "$(dirname "$0")"

# Mesa's Vulkan driver complains on stderr without a runtime dir; give it a private one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)"
  export XDG_RUNTIME_DIR
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
# Snapshots are never written by a test run: a changed snapshot is a failure to review.
INSTA_UPDATE=no cargo test --workspace --locked
