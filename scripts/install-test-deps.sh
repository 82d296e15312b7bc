#!/usr/bin/env bash
# Install the system packages the tests need (Debian; run as root, as CI does).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
for pair in git:git gcc:gcc make:make cmake:cmake perf:linux-perf valgrind:valgrind node:nodejs \
            chromium:chromium chromedriver:chromium-driver promtool:prometheus \
            amtool:prometheus-alertmanager \
            systemd-analyze:systemd; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
# The PostgreSQL server: tests start their own throwaway cluster with its initdb and pg_ctl,
# which Debian keeps off PATH (tests/postgres.py).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
