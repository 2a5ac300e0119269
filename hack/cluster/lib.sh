# shellcheck shell=bash
# Shared settings for hack/cluster-{build,up,down}.sh: versions, cache layout, tool environment.
# Sourced, not executed. Everything lands outside the repository, keyed by the versions used.

CLUSTER_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Kubernetes and etcd versions live in their wrapper modules' go.mod (one place to bump).
KUBE_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "${CLUSTER_LIB_DIR}/kube/go.mod")"
ETCD_VERSION="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "${CLUSTER_LIB_DIR}/etcd/go.mod")"
KWOK_VERSION="v0.8.0"
HELM_VERSION="v3.22.0"
PROMETHEUS_OPERATOR_VERSION="v0.85.0"
# The Gateway API Inference Extension's CRDs (InferencePool). Fetched into the cache without a
# rebuild when missing, so not part of the recipe hash below.
INFERENCE_EXTENSION_VERSION="v1.6.2"

if [[ -z "${KUBE_VERSION}" || -z "${ETCD_VERSION}" ]]; then
  echo "cluster: cannot read the pinned versions from hack/cluster/{kube,etcd}/go.mod" >&2
  exit 1
fi

# The key changes whenever a version or a wrapper module's dependency set changes, so a stale
# cache is never reused; old keys can simply be deleted.
_recipe_hash="$( (cat "${CLUSTER_LIB_DIR}"/kube/go.sum "${CLUSTER_LIB_DIR}"/etcd/go.sum
  echo "${PROMETHEUS_OPERATOR_VERSION}") | sha256sum | cut -c1-10)"
SENTIRIC_CACHE="${SENTIRIC_CACHE:-${HOME}/.cache/sentiric-llm}"
CLUSTER_HOME="${SENTIRIC_CACHE}/cluster/k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_${_recipe_hash}"
BIN_DIR="${CLUSTER_HOME}/bin"
CRD_DIR="${CLUSTER_HOME}/crds"
SERVICEMONITOR_CRD="${CRD_DIR}/monitoring.coreos.com_servicemonitors.yaml"
INFERENCEPOOL_CRD="${CRD_DIR}/inference.networking.k8s.io_inferencepools_${INFERENCE_EXTENSION_VERSION}.yaml"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm)

# kwokctl keeps clusters (certificates, etcd data, logs, pid files) under its work dir; ours is
# private so a user's ~/.kwok/kwok.yaml never changes how test clusters start.
export KWOK_WORKDIR="${SENTIRIC_CACHE}/kwok"

cluster_log() {
  echo "cluster: $*" >&2
}

cluster_cache_complete() {
  local bin
  for bin in "${BINARIES[@]}"; do
    [[ -x "${BIN_DIR}/${bin}" ]] || return 1
  done
  [[ -s "${SERVICEMONITOR_CRD}" && -s "${INFERENCEPOOL_CRD}" ]]
}

# Ownership of a test cluster (hack/cluster-up.sh with SENTIRIC_CLUSTER_OWNER_PID set): a state
# file per cluster, outside its kwok work dir so it exists before kwokctl starts anything and
# survives a half-deleted work dir. A watchdog tied to the owner (hack/cluster/watchdog.sh)
# tears the cluster down when the owner dies without doing so; hack/cluster/reap.sh, run by
# every cluster-up, reaps what a dead owner and its dead watchdog left.
OWNERS_DIR="${KWOK_WORKDIR}/owners"

owner_state() {
  echo "${OWNERS_DIR}/$1.state"
}

# Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), so a pid
# reused by another process is not mistaken for the owner. Empty when it is gone, or dead and
# not yet waited for (a zombie).
proc_start_time() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  stat="${stat##*) }"
  awk '$1 != "Z" && $1 != "X" {print $20}' <<<"${stat}"
}

# state_get FILE KEY: the value of KEY=... in a state file (empty when absent).
state_get() {
  [[ -f "$1" ]] || return 0
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

# pid_matches PID START: PID runs and is the process that had start time START.
pid_matches() {
  [[ -n "$1" && -n "$2" ]] || return 1
  [[ "$(proc_start_time "$1")" == "$2" ]]
}

owner_alive() {
  local state="$1"
  pid_matches "$(state_get "${state}" owner_pid)" "$(state_get "${state}" owner_start)"
}

watchdog_alive() {
  local state="$1"
  pid_matches "$(state_get "${state}" watchdog_pid)" "$(state_get "${state}" watchdog_start)"
}

# owner_register NAME OWNER_PID: write the state file and start the watchdog, detached in its
# own session with no inherited descriptors (a caller reading our stdout must not wait on it).
owner_register() {
  local name="$1" owner="$2" state start wd
  state="$(owner_state "${name}")"
  start="$(proc_start_time "${owner}")"
  if [[ -z "${start}" ]]; then
    cluster_log "owner process ${owner} of cluster ${name} is not running"
    return 1
  fi
  mkdir -p "${OWNERS_DIR}"
  printf 'owner_pid=%s\nowner_start=%s\nup_pid=%s\nup_start=%s\nworkdir=%s\n' \
    "${owner}" "${start}" "$$" "$(proc_start_time $$)" "${KWOK_WORKDIR}/clusters/${name}" \
    >"${state}"
  setsid bash "${CLUSTER_LIB_DIR}/watchdog.sh" "${name}" \
    </dev/null >>"${OWNERS_DIR}/${name}.log" 2>&1 8>&- 9>&- &
  wd=$!
  printf 'watchdog_pid=%s\nwatchdog_start=%s\n' "${wd}" "$(proc_start_time "${wd}")" >>"${state}"
}

# owner_record_pids NAME: add the component pids kwokctl wrote to the state file.
owner_record_pids() {
  local name="$1" state f pids=()
  state="$(owner_state "${name}")"
  [[ -f "${state}" ]] || return 0
  for f in "${KWOK_WORKDIR}/clusters/${name}"/pids/*.pid; do
    [[ -f "${f}" ]] && pids+=("$(<"${f}")")
  done
  printf 'component_pids=%s\n' "${pids[*]}" >>"${state}"
}
