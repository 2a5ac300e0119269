#!/usr/bin/env bash
# Tear down a local cluster started by hack/cluster-up.sh and leave no process behind.
# Usage: hack/cluster-down.sh [NAME]   (default NAME: sentiric). Succeeds if it is already gone.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "${HACK_DIR}/cluster/lib.sh"

NAME="${1:-sentiric}"
WORKDIR="${KWOK_WORKDIR}/clusters/${NAME}"
STATE="$(owner_state "${NAME}")"
if [[ ! -d "${WORKDIR}" && ! -f "${STATE}" ]]; then
  cluster_log "no cluster ${NAME}"
  exit 0
fi

# Read the pids before kwokctl removes the work dir: they are the backstop below. The owner's
# state file keeps a copy, in case the work dir's pid files are already gone.
pids=()
for f in "${WORKDIR}"/pids/*.pid; do
  [[ -f "${f}" ]] && pids+=("$(<"${f}")")
done
# shellcheck disable=SC2207 # a space-separated list of numbers
pids+=($(state_get "${STATE}" component_pids))

if [[ -d "${WORKDIR}" && -x "${BIN_DIR}/kwokctl" ]]; then
  # --kubeconfig names the cluster's own file (deleted with it): kwokctl would otherwise edit
  # ~/.kube/config, and it rejects an empty path here.
  timeout 90 "${BIN_DIR}/kwokctl" delete cluster --name "${NAME}" \
    --kubeconfig "${WORKDIR}/kubeconfig.yaml" >&2 \
    || cluster_log "kwokctl delete cluster ${NAME} failed; stopping its processes directly"
fi

# Only signal a pid whose command line still names this cluster's work dir (pids get reused).
owned() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "${WORKDIR}"; }
for sig in TERM KILL; do
  left=()
  for pid in "${pids[@]}"; do
    owned "${pid}" && left+=("${pid}")
  done
  ((${#left[@]})) || break
  cluster_log "sending SIG${sig} to leftover processes ${left[*]}"
  kill "-${sig}" "${left[@]}" 2>/dev/null || true
  for _ in $(seq 1 20); do
    alive=0
    for pid in "${left[@]}"; do owned "${pid}" && alive=1; done
    ((alive)) || break
    sleep 0.5
  done
done

rm -rf "${WORKDIR}"
# Last: its removal is what tells the watchdog the cluster was torn down on purpose.
rm -f "${STATE}" "${OWNERS_DIR}/${NAME}.log"
cluster_log "cluster ${NAME} deleted"
