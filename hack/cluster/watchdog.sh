#!/usr/bin/env bash
# Tear down cluster NAME when its owner (the test run that started it) dies without doing so:
# pytest killed by SIGKILL, by the OOM killer, or by a crashing test. Started detached by
# hack/cluster-up.sh (owner_register in lib.sh); exits by itself once cluster-down.sh removes
# the state file. Usage: hack/cluster/watchdog.sh NAME
# Bounded: SENTIRIC_CLUSTER_WATCHDOG_MAX_S (default a day) after which it leaves the cluster
# to the next cluster-up's reap.sh; polls every SENTIRIC_CLUSTER_WATCHDOG_INTERVAL seconds.
set -euo pipefail
# shellcheck source=hack/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="$1"
STATE="$(owner_state "${NAME}")"
INTERVAL="${SENTIRIC_CLUSTER_WATCHDOG_INTERVAL:-1}"
MAX_S="${SENTIRIC_CLUSTER_WATCHDOG_MAX_S:-86400}"
# A start still in progress when the owner died is let finish first (kwokctl's own timeout is
# 3 minutes; a failed start tears itself down), so the reap never races kwokctl.
UP_GRACE_S=300

log() { echo "$(date -u +%FT%TZ) watchdog[$$] ${NAME}: $*"; }

OWNER="$(state_get "${STATE}" owner_pid)"
log "watching owner ${OWNER}"
deadline=$((SECONDS + MAX_S))
while [[ -f "${STATE}" ]] && owner_alive "${STATE}"; do
  if ((SECONDS >= deadline)); then
    log "still running after ${MAX_S}s; leaving it to the next cluster-up's reap"
    exit 0
  fi
  sleep "${INTERVAL}"
done
if [[ ! -f "${STATE}" ]]; then
  log "torn down by its owner"
  exit 0
fi

log "owner ${OWNER} is gone without tearing the cluster down"
up_pid="$(state_get "${STATE}" up_pid)" up_start="$(state_get "${STATE}" up_start)"
deadline=$((SECONDS + UP_GRACE_S))
while pid_matches "${up_pid}" "${up_start}" && ((SECONDS < deadline)); do
  sleep "${INTERVAL}"
done
[[ -f "${STATE}" ]] || exit 0
bash "${CLUSTER_LIB_DIR}/../cluster-down.sh" "${NAME}"
echo "$(date -u +%FT%TZ) ${NAME} reaped by its watchdog (owner ${OWNER} died)" \
  >>"${OWNERS_DIR}/reaped.log"
log "reaped"
