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
  [[ -s "${SERVICEMONITOR_CRD}" ]]
}
