#!/usr/bin/env bash
# Tear down the local clusters whose owner died and whose watchdog is gone too (a reboot, a
# watchdog killed with its session), so a crashed test run never leaves etcd and API servers
# behind for longer than until the next hack/cluster-up.sh, which runs this first.
# Reaped: clusters with a state file (hack/cluster/lib.sh owner_register) whose owner and
# watchdog no longer run, and `sentiric-test-<pid>` clusters of older test runs with no state
# file whose pid no longer runs. Clusters started by hand (no owner) are never touched.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "${HACK_DIR}/cluster/lib.sh"

[[ -d "${KWOK_WORKDIR}" ]] || exit 0
mkdir -p "${OWNERS_DIR}"
# Two test sessions starting at once reap one at a time (bounded wait).
exec 8>"${OWNERS_DIR}/.reap.lock"
flock -w 300 8

reap() {
  local name="$1" why="$2"
  cluster_log "reaping cluster ${name}: ${why}"
  bash "${HACK_DIR}/cluster-down.sh" "${name}" >&2 8>&-
  echo "$(date -u +%FT%TZ) ${name} reaped by cluster-up (${why})" >>"${OWNERS_DIR}/reaped.log"
}

for state in "${OWNERS_DIR}"/*.state; do
  [[ -f "${state}" ]] || continue
  name="$(basename "${state}" .state)"
  owner_alive "${state}" && continue
  # A live watchdog is reaping it already (or waiting for its cluster-up to finish).
  watchdog_alive "${state}" && continue
  reap "${name}" "owner $(state_get "${state}" owner_pid) and its watchdog are gone"
done

for dir in "${KWOK_WORKDIR}"/clusters/sentiric-test-*; do
  [[ -d "${dir}" ]] || continue
  name="$(basename "${dir}")"
  pid="${name#sentiric-test-}"
  [[ "${pid}" =~ ^[0-9]+$ && ! -f "$(owner_state "${name}")" ]] || continue
  [[ -d "/proc/${pid}" ]] && continue
  reap "${name}" "left by test run ${pid}, which no longer runs"
done
