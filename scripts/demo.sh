#!/usr/bin/env bash
# `make demo`: build the bundled example project at two commits (the second injects a 10%
# slowdown into its request parser), run the example suite at both, store every sample in
# SQLite under .perfd/, show what was recorded, compare the two commits in lock-step pairs,
# open (confirmed) alerts from the history and check the budgets.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=.perfd/demo-repo
rm -rf "$repo"
mkdir -p .perfd
examples/make-demo-repo.sh "$repo" > .perfd/demo-commits
base=$(awk '$1=="base"{print $2}' .perfd/demo-commits)
slow=$(awk '$1=="slow"{print $2}' .perfd/demo-commits)
echo "== example project at $repo: base ${base:0:12}, slowdown ${slow:0:12}"
echo
perfd db upgrade >/dev/null  # a .perfd/ from an older perfd keeps working
echo "== perfd check-config suites budgets.yaml"
perfd check-config suites budgets.yaml
echo
echo "== perfd reference set --suite example --commit ${base:0:12} --reason ..."
echo "   (history runs take turns with this build in lock-step pairs; their ratios are the history)"
perfd reference set --suite example --commit "$base" --reason "demo: the release before the slowdown" --by demo
for sha in "$base" "$slow"; do
  echo
  echo "== perfd run --suite example --commit ${sha:0:12} --output perfd-out/${sha:0:12}"
  perfd run --suite example --commit "$sha" --output "perfd-out/${sha:0:12}"
done
echo
echo "== perfd runs list"
perfd runs list --limit 5
echo
echo "== perfd compare --suite example --baseline ${base:0:12} --current ${slow:0:12} --interleave"
echo "   (both builds run now, in pairs of processes taking turns sample by sample on one CPU)"
set +e
perfd -q compare --suite example --baseline "$base" --current "$slow" --interleave \
  --output perfd-out/compare.txt
status=$?
set -e
# exit status 1 is the verdict "regressed" - the expected outcome here; anything else is an error
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then exit "$status"; fi
echo "(exit status $status: 1 means a regression was found; report also in perfd-out/compare.txt)"
echo
echo "== perfd alert --no-evidence"
echo "   (each step in the stored history is re-measured as a lock-step A/B of its last good and"
echo "   first bad commit before an alert opens; a step the A/B refutes is recorded as noise)"
set +e
perfd -q alert --no-evidence
status=$?
set -e
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then exit "$status"; fi
echo
echo "== perfd alert list"
perfd alert list
echo
echo "== perfd budgets check"
set +e
perfd budgets check
status=$?
set -e
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then exit "$status"; fi
echo "(exit status $status: 1 means a block budget failed on the latest run)"
