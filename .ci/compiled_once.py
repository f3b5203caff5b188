#!/usr/bin/env python3
"""Fails when the tests' build compiled a registry crate that the demo's build had built.

Usage: compiled_once.py DEMO.json TESTS.json, the `--message-format=json` output of
`cargo build -p streamlake` (what `cargo run -p streamlake -- demo` builds) and of
`cargo test --workspace --all-targets --no-run`, run one after the other.

Cargo reports every unit of a build as a `compiler-artifact` message, `fresh` when it
reused what was built. A dependency that the tests' build compiles again (not fresh)
although the demo's build has it means the two builds asked for different features of it,
and every crate above it is compiled twice (a dev-dependency turning on a feature is the
usual cause: turn the same feature on in a normal dependency of `streamlake`, as
local/Cargo.toml does). Crates only the tests use (proptest, criterion) are new, not
compiled again, and pass.
"""

import json
import sys


def artifacts(path):
    with open(path, encoding="utf-8") as messages:
        for line in messages:
            if line.startswith("{"):
                message = json.loads(line)
                if message.get("reason") == "compiler-artifact":
                    yield message


def from_a_registry(package_id):
    return package_id.startswith(("registry+", "sparse+", "git+"))


def main(demo_path, tests_path):
    demo = {a["package_id"] for a in artifacts(demo_path)}
    again = sorted(
        {
            a["package_id"]
            for a in artifacts(tests_path)
            if not a["fresh"] and a["package_id"] in demo and from_a_registry(a["package_id"])
        }
    )
    if not demo:
        print(f"{demo_path}: no compiler-artifact message", file=sys.stderr)
        return 1
    if again:
        print(
            f"the tests' build compiled {len(again)} crates again that the demo's build had "
            "built (a dev-dependency asks for features the normal build does not):",
            file=sys.stderr,
        )
        for package_id in again:
            print(f"  {package_id.split('#')[-1]}", file=sys.stderr)
        return 1
    print(f"the tests' build reused all {len(demo)} packages of the demo's build")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
