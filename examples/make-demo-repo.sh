#!/usr/bin/env bash
# make-demo-repo.sh DEST - create the perfd demo repository at DEST.
#
# DEST becomes a fresh git repository (branch main) whose root is a copy of
# examples/minilib, with two commits:
#   1. "minilib: initial import"
#   2. "request: inject a 10% slowdown into parse"
#      (include/minilib_tuning.h: MINILIB_SLOW_PARSE_PCT 0 -> 10)
# Author, committer and dates are fixed and the user's git configuration is
# ignored, so the commit ids depend only on the content of examples/minilib.
# Prints "base <sha>" and "slow <sha>" on stdout.
set -euo pipefail

usage() {
    echo "usage: $0 DEST" >&2
    exit 2
}

[[ $# -eq 1 && -n "$1" ]] || usage
dest=$1
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/minilib"

if [[ ! -f "$src/include/minilib_tuning.h" ]]; then
    echo "error: $src does not look like examples/minilib" >&2
    exit 1
fi
if [[ -e "$dest" && ! -d "$dest" ]]; then
    echo "error: $dest exists and is not a directory" >&2
    exit 1
fi
if [[ -d "$dest" && -n "$(ls -A "$dest")" ]]; then
    echo "error: $dest exists and is not empty; choose a new directory" >&2
    exit 1
fi

# Reproducible commits: no system/global config (hooks, templates, signing,
# autocrlf), fixed identity and dates.
export GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="perfd demo"
export GIT_AUTHOR_EMAIL="demo@perfd.invalid"
export GIT_COMMITTER_NAME="perfd demo"
export GIT_COMMITTER_EMAIL="demo@perfd.invalid"
export TZ=UTC
git_() {
    git -C "$dest" -c commit.gpgsign=false -c core.autocrlf=false -c core.fileMode=true "$@"
}

mkdir -p "$dest"
git init -q -b main "$dest"

# Copy the sources, never build outputs.
tar -C "$src" --exclude=./build --exclude='*.o' --exclude='*.a' --exclude='*.d' -cf - . \
    | tar -C "$dest" -xf -
# Only the executable bit is recorded by git; normalise it so that the copy's
# permissions cannot change the commit ids.
find "$dest" -path "$dest/.git" -prune -o -type f -exec chmod 0644 {} +

git_ add -A
GIT_AUTHOR_DATE="2026-01-05T09:00:00Z" GIT_COMMITTER_DATE="2026-01-05T09:00:00Z" \
    git_ commit -q -m "minilib: initial import"
base=$(git_ rev-parse HEAD)

tuning="$dest/include/minilib_tuning.h"
sed -i 's/^#define MINILIB_SLOW_PARSE_PCT 0$/#define MINILIB_SLOW_PARSE_PCT 10/' "$tuning"
if ! grep -q '^#define MINILIB_SLOW_PARSE_PCT 10$' "$tuning"; then
    echo "error: could not set MINILIB_SLOW_PARSE_PCT in $tuning" >&2
    exit 1
fi
git_ add include/minilib_tuning.h
GIT_AUTHOR_DATE="2026-01-06T09:00:00Z" GIT_COMMITTER_DATE="2026-01-06T09:00:00Z" \
    git_ commit -q -m "request: inject a 10% slowdown into parse"
slow=$(git_ rev-parse HEAD)

echo "base $base"
echo "slow $slow"
