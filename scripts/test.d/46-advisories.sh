#!/usr/bin/env bash
# Security advisories: the real `cargo deny check advisories` and `cargo audit` against Cargo.lock
# and the side crates' lockfiles (fuzz/, bench/*, tests/interop/*), without network access to the
# advisory database.
#
# Where the database comes from, first that works:
#   1. AZWI_ADVISORY_DB: a clone of https://github.com/rustsec/advisory-db on disk.
#   2. The live database, when GitHub answers (a shallow clone).
#   3. A facts table written by `scripts/tools/advisories.py snapshot` (ids, packages, version ranges,
#      no prose), at AZWI_ADVISORY_SNAPSHOT, ../shared/advisories/rustsec.tsv (beside the clone)
#      or $AZWI_CACHE/advisories/rustsec.tsv: `scripts/tools/advisories.py build-db` turns it into a
#      minimal database in the tools' format.
# Without any of them (a fresh machine offline: the search tool's snapshots may not be committed,
# and no registry this machine reaches serves the database) nothing is checked: the step says so
# loudly, and scripts/test repeats it in its summary as NOT CHECKED; AZWI_REQUIRE_ADVISORIES=1
# makes that a failure instead. It never reports advisories as clean without having checked.
#
# Both tools then read that one database with fetching disabled. A throwaway crate that locks a
# known-vulnerable version (smallvec 1.6.0, RUSTSEC-2021-0003) must make both of them fail.
set -euo pipefail
CARGO_DENY_VERSION=0.20.2
CARGO_AUDIT_VERSION=0.22.2
# Where cargo-deny 0.20 keeps the database of https://github.com/rustsec/advisory-db inside
# `db-path` (a hash of the URL; bound to the pinned version above).
DENY_DB_DIR=advisory-db-3157b0e258782691
root="$(pwd)"
cache="${AZWI_CACHE:-$HOME/.cache/azure-wi}"
bin="$cache/cargo/bin"

install() { # crate version
    if ! { [ -x "$bin/$1" ] && "$bin/$1" --version | grep -qx "$1 $2"; }; then
        cargo install --locked "$1" --version "$2" --root "$cache/cargo"
    fi
}

work="$cache/advisories/run"
rm -rf "$work"
mkdir -p "$work/deny"
db="$work/deny/$DENY_DB_DIR"
snapshot=""
for candidate in "${AZWI_ADVISORY_SNAPSHOT:-}" "$root/../shared/advisories/rustsec.tsv" \
    "$cache/advisories/rustsec.tsv"; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then
        snapshot="$candidate"
        break
    fi
done
source=full
if [ -n "${AZWI_ADVISORY_DB:-}" ]; then
    git clone -q --no-local --depth 1 "file://$(realpath "$AZWI_ADVISORY_DB")" "$db"
    echo "advisory database: $AZWI_ADVISORY_DB at $(git -C "$db" log -1 --format='%H (%cI)')"
elif timeout 20 git ls-remote --exit-code https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    git clone -q --depth 1 https://github.com/rustsec/advisory-db "$db"
    echo "advisory database: live, $(git -C "$db" log -1 --format='%H (%cI)')"
elif [ -n "$snapshot" ]; then
    source=table
    python3 scripts/tools/advisories.py build-db --snapshot "$snapshot" --out "$db"
    echo "advisory database: built from $snapshot (RustSec $(sed -n 's/^# commit: //p' "$snapshot" | head -1)," \
        "$(sed -n 's/^# date: //p' "$snapshot" | head -1))"
else
    cat >&2 <<EOF
No RustSec advisory database: GitHub is not reachable and no snapshot was found.
Give one of:
  AZWI_ADVISORY_DB=<a clone of https://github.com/rustsec/advisory-db>
  AZWI_ADVISORY_SNAPSHOT=<a table from: scripts/tools/advisories.py snapshot --git-dir <clone> --out FILE>
  or put that table at ../shared/advisories/rustsec.tsv or $cache/advisories/rustsec.tsv
EOF
    [ "${AZWI_REQUIRE_ADVISORIES:-0}" = 1 ] && exit 1
    note="advisories (cargo deny advisories, cargo audit): no RustSec database reachable from this machine"
    echo "NOT CHECKED: $note" >&2
    [ -n "${AZWI_NOT_CHECKED:-}" ] && echo "$note" >>"$AZWI_NOT_CHECKED"
    exit 0
fi
count="$(find "$db/crates" -name 'RUSTSEC-*.md' | wc -l)"
[ "$count" -gt 500 ] || { echo "advisory database at $db has only $count advisories" >&2; exit 1; }

# The tools are installed only once there is a database to check against (a fresh machine
# without one does not spend minutes compiling them for nothing).
install cargo-deny "$CARGO_DENY_VERSION"
install cargo-audit "$CARGO_AUDIT_VERSION"

# deny.toml with the database pointed at $work/deny.
config="$work/deny.toml"
awk -v p="$work/deny" '{ print } /^\[advisories\]/ { print "db-path = \"" p "\"" }' deny.toml >"$config"
grep -q "^db-path = \"$work/deny\"" "$config" || { echo "deny.toml has no [advisories] table" >&2; exit 1; }

deny() { # manifest-dir features(--all-features or "") [check options...]
    local dir="$1" features="$2"
    shift 2
    # cargo-deny's --offline also keeps `cargo metadata` offline: fetch the crates first.
    cargo fetch --locked --manifest-path "$dir/Cargo.toml" >/dev/null
    "$bin/cargo-deny" --manifest-path "$dir/Cargo.toml" --workspace --offline --locked ${features:+"$features"} \
        --config "$config" check "$@" advisories
}
audit() { # manifest-dir [cargo-audit options...]
    local dir="$1"
    shift
    "$bin/cargo-audit" audit --no-fetch --db "$db" --file "$dir/Cargo.lock" --deny warnings "$@"
}

# 1. The check catches a known-vulnerable version (else a pass below would prove nothing).
vulnerable="$work/vulnerable"
mkdir -p "$vulnerable/src"
cat >"$vulnerable/Cargo.toml" <<'EOF'
[package]
name = "advisory-check-input"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
smallvec = "=1.6.0"

[workspace]
EOF
: >"$vulnerable/src/lib.rs"
cargo generate-lockfile --manifest-path "$vulnerable/Cargo.toml" -q
expect_finding() { # tool, output file
    if ! grep -q 'RUSTSEC-2021-0003' "$2"; then
        echo "$1 passed or failed without naming RUSTSEC-2021-0003 for smallvec 1.6.0:" >&2
        cat "$2" >&2
        exit 1
    fi
    echo "$1 flags smallvec 1.6.0 (RUSTSEC-2021-0003): ok"
}
if deny "$vulnerable" "" >"$work/deny-vulnerable.out" 2>&1; then
    cat "$work/deny-vulnerable.out" >&2
    echo "cargo deny passed a lockfile with smallvec 1.6.0" >&2
    exit 1
fi
expect_finding "cargo deny" "$work/deny-vulnerable.out"
if audit "$vulnerable" >"$work/audit-vulnerable.out" 2>&1; then
    cat "$work/audit-vulnerable.out" >&2
    echo "cargo audit passed a lockfile with smallvec 1.6.0" >&2
    exit 1
fi
expect_finding "cargo audit" "$work/audit-vulnerable.out"

# 1b. With a full database at hand, the facts table that offline runs use must find exactly what
# the full database finds (cargo audit on a lockfile with 6 old crates); it is then kept in the
# cache for the next offline run.
if [ "$source" = full ]; then
    python3 scripts/tools/advisories.py snapshot --git-dir "$db" --out "$work/rustsec.tsv"
    python3 scripts/tools/advisories.py build-db --snapshot "$work/rustsec.tsv" --out "$work/from-table"
    old="$work/old-crates"
    mkdir -p "$old/src"
    : >"$old/src/lib.rs"
    cat >"$old/Cargo.toml" <<'EOF'
[package]
name = "advisory-table-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
smallvec = "=1.6.0"
chrono = "=0.4.19"
hyper = { version = "=0.14.9", features = ["full"] }
tokio = { version = "=1.8.0", features = ["full"] }
regex = "=1.5.4"
time = "=0.1.43"

[workspace]
EOF
    cargo generate-lockfile --manifest-path "$old/Cargo.toml" -q
    ids() { # database; cargo audit exits 1 when it finds something, which is expected here
        { "$bin/cargo-audit" audit --no-fetch --db "$1" --file "$old/Cargo.lock" --json || true; } |
            python3 -c 'import json, sys
report = json.load(sys.stdin)
found = [v["advisory"]["id"] for v in report["vulnerabilities"]["list"]]
found += [w["advisory"]["id"] for ws in report["warnings"].values() for w in ws if w.get("advisory")]
print(" ".join(sorted(found)))'
    }
    full_ids="$(ids "$db")"
    table_ids="$(ids "$work/from-table")"
    if [ -z "$full_ids" ] || [ "$full_ids" != "$table_ids" ]; then
        echo "the facts table finds other advisories than the full database:" >&2
        echo "  full:  $full_ids" >&2
        echo "  table: $table_ids" >&2
        exit 1
    fi
    echo "facts table finds what the full database finds ($(wc -w <<<"$full_ids") advisories): ok"
    mkdir -p "$cache/advisories"
    cp "$work/rustsec.tsv" "$cache/advisories/rustsec.tsv"
fi

# 2. Our lockfiles. Ignored advisories are listed, with reasons, in deny.toml; cargo audit reads
# the same list.
ignores=()
while read -r id; do
    ignores+=(--ignore "$id")
done < <(sed -n '/^\[advisories\]/,/^\[/p' deny.toml | grep -oE 'RUSTSEC-[0-9]{4}-[0-9]{4}' | sort -u)
status=0
for dir in . fuzz bench/loadgen bench/rust-azure-identity tests/interop/keyvault \
    tests/interop/rust-azure-identity; do
    [ -f "$dir/Cargo.lock" ] || { echo "$dir/Cargo.lock is missing" >&2; exit 1; }
    # The root graph has every feature; a side crate need not meet the root's ignored advisories.
    if [ "$dir" = . ]; then
        checked=(deny "$dir" --all-features)
    else
        checked=(deny "$dir" "" --allow advisory-not-detected)
    fi
    if "${checked[@]}"; then
        echo "cargo deny check advisories $dir: ok"
    else
        echo "cargo deny check advisories $dir: FAILED" >&2
        status=1
    fi
    if audit "$dir" "${ignores[@]}"; then
        echo "cargo audit $dir: ok"
    else
        echo "cargo audit $dir: FAILED" >&2
        status=1
    fi
done
exit $status
