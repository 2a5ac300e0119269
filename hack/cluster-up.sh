#!/usr/bin/env bash
# Bring up a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok-controller as local processes, no containers) with two fake nodes, and
# print its kubeconfig path. Usage: hack/cluster-up.sh [NAME]   (default NAME: sentiric)
# An existing cluster of the same name is replaced. Tear down with hack/cluster-down.sh [NAME].
# With SENTIRIC_CLUSTER_OWNER_PID=PID (the test fixture passes its own pid) the cluster belongs
# to that process: a watchdog tears it down if PID dies first (hack/cluster/watchdog.sh), and
# every cluster-up first reaps clusters whose owner and watchdog are both gone (reap.sh).
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "${HACK_DIR}/cluster/lib.sh"

NAME="${1:-sentiric}"
if [[ ! "${NAME}" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; then
  echo "cluster-up: NAME must be a DNS label (lower-case letters, digits, '-'), got '${NAME}'" >&2
  exit 2
fi

OWNER="${SENTIRIC_CLUSTER_OWNER_PID:-}"
if [[ -n "${OWNER}" && ! "${OWNER}" =~ ^[0-9]+$ ]]; then
  echo "cluster-up: SENTIRIC_CLUSTER_OWNER_PID must be a pid, got '${OWNER}'" >&2
  exit 2
fi

BIN="$(bash "${HACK_DIR}/cluster-build.sh")"
bash "${HACK_DIR}/cluster/reap.sh"
# kwokctl runs kubectl from PATH for some operations; make it ours, never a download.
export PATH="${BIN}:${PATH}"
export KWOK_KUBECTL_BINARY="${BIN}/kubectl"
KUBECONFIG_PATH="${KWOK_WORKDIR}/clusters/${NAME}/kubeconfig.yaml"
kubectl() { "${BIN}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" "$@"; }

if [[ -d "${KWOK_WORKDIR}/clusters/${NAME}" ]]; then
  cluster_log "replacing existing cluster ${NAME}"
  bash "${HACK_DIR}/cluster-down.sh" "${NAME}" >&2
fi

started=${SECONDS}
ok=0
# A half-started cluster is torn down so no process outlives a failed start.
trap '[[ ${ok} == 1 ]] || bash "${HACK_DIR}/cluster-down.sh" "${NAME}" >&2 || true' EXIT
# Registered before kwokctl starts anything: if the owner dies mid-start, the watchdog waits
# for this script to finish, then reaps whatever it started.
if [[ -n "${OWNER}" ]]; then
  owner_register "${NAME}" "${OWNER}"
fi

# --kubeconfig="" keeps kwokctl away from ~/.kube/config; its own kubeconfig.yaml is enough.
# Every binary is given explicitly, so kwokctl has nothing to download.
"${BIN}/kwokctl" create cluster \
  --name "${NAME}" \
  --config "${CLUSTER_LIB_DIR}/kwokctl.yaml" \
  --runtime binary \
  --kubeconfig "" \
  --kube-apiserver-binary "${BIN}/kube-apiserver" \
  --kube-controller-manager-binary "${BIN}/kube-controller-manager" \
  --kube-scheduler-binary "${BIN}/kube-scheduler" \
  --etcd-binary "${BIN}/etcd" \
  --kwok-controller-binary "${BIN}/kwok" \
  --kube-authorization=true \
  --kube-admission=true \
  --quiet-pull \
  --timeout 3m \
  --wait 2m >&2

wait_until() {
  local what="$1" tries="$2"
  shift 2
  local i
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  cluster_log "timed out waiting for ${what}"
  return 1
}

wait_until "the API server to answer /readyz" 120 kubectl get --raw /readyz
kubectl apply -f "${CLUSTER_LIB_DIR}/nodes.yaml" >&2
# Polled rather than `kubectl wait`, which errors out while a new node has no conditions yet.
nodes_ready() {
  local pairs pair
  pairs="$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{" "}{end}')"
  [[ -n "${pairs}" ]] || return 1
  for pair in ${pairs}; do
    [[ "${pair}" == *=True ]] || return 1
  done
}
wait_until "the fake nodes to be Ready" 90 nodes_ready
# Pods are only admitted once the namespace's default ServiceAccount exists.
wait_until "the default ServiceAccount" 90 kubectl -n default get serviceaccount default

owner_record_pids "${NAME}"
ok=1
cluster_log "cluster ${NAME} (Kubernetes ${KUBE_VERSION}) ready in $((SECONDS - started))s"
echo "${KUBECONFIG_PATH}"
