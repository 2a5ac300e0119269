#!/usr/bin/env bash
# Build the local control plane (kube-apiserver, -controller-manager, -scheduler, kubectl, etcd,
# kwok, kwokctl, helm) from Go modules into a version-keyed cache and print its bin dir.
# A no-op when the cache is complete. Progress goes to stderr; stdout is only the bin dir.
set -euo pipefail
# shellcheck source=hack/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster/lib.sh"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false"

mkdir -p "${CLUSTER_HOME}"
# Several test sessions may start at once: one builds, the others wait and reuse its output.
exec 9>"${CLUSTER_HOME}/.build.lock"
flock 9

if cluster_cache_complete; then
  echo "${BIN_DIR}"
  exit 0
fi

STAGING="${CLUSTER_HOME}/.staging"
rm -rf "${STAGING}"
mkdir -p "${STAGING}" "${BIN_DIR}" "${CRD_DIR}"
trap 'rm -rf "${STAGING}"' EXIT

# Publish a finished binary atomically so an interrupted build never leaves a half file in bin.
publish() {
  local name
  for name in "$@"; do
    mv -f "${STAGING}/${name}" "${BIN_DIR}/${name}"
  done
}

timed() {
  local label="$1" start=${SECONDS}
  shift
  cluster_log "building ${label}"
  "$@"
  cluster_log "built ${label} in $((SECONDS - start))s"
}

build_kube() {
  local minor
  minor="$(cut -d. -f2 <<<"${KUBE_VERSION}")"
  local pkg ldflags=(-s -w)
  # Both version packages are stamped: servers report component-base, kubectl's client side
  # reports client-go; kwokctl reads the servers' --version to pick their flags.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=(-X "${pkg}.gitVersion=${KUBE_VERSION}" -X "${pkg}.gitMajor=1"
      -X "${pkg}.gitMinor=${minor}" -X "${pkg}.gitTreeState=clean")
  done
  # One `go build` for all four so their shared packages compile once.
  (cd "${CLUSTER_LIB_DIR}/kube" && go build -mod=readonly -trimpath -ldflags "${ldflags[*]}" \
    -o "${STAGING}/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  publish kube-apiserver kube-controller-manager kube-scheduler kubectl
}

build_etcd() {
  (cd "${CLUSTER_LIB_DIR}/etcd" && go build -mod=readonly -trimpath -ldflags "-s -w" \
    -o "${STAGING}/etcd" go.etcd.io/etcd/server/v3)
  publish etcd
}

build_kwok() {
  local c=sigs.k8s.io/kwok/pkg/consts
  GOBIN="${STAGING}" go install -trimpath \
    -ldflags "-s -w -X ${c}.Version=${KWOK_VERSION} -X ${c}.KubeVersion=${KUBE_VERSION}" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}"
  publish kwok kwokctl
}

build_helm() {
  # Helm's Makefile stamps the Kubernetes version its client libraries target (used for
  # .Capabilities.KubeVersion in `helm template`); read it from helm's own go.mod.
  local gomod client_go major minor v=helm.sh/helm/v3/internal/version
  gomod="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  client_go="$(awk '$1 == "k8s.io/client-go" {print $2}' "${gomod}")"
  major=$(($(cut -d. -f1 <<<"${client_go#v}") + 1))
  minor="$(cut -d. -f2 <<<"${client_go}")"
  GOBIN="${STAGING}" go install -trimpath -ldflags "-s -w -X ${v}.version=${HELM_VERSION} \
-X ${v}.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${major} \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor} \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${major} \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  publish helm
}

fetch_servicemonitor_crd() {
  local dir
  dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  install -m 0644 "${dir}/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
    "${SERVICEMONITOR_CRD}"
}

fetch_inferencepool_crd() {
  local dir
  dir="$(go mod download -json "sigs.k8s.io/gateway-api-inference-extension@${INFERENCE_EXTENSION_VERSION}" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  install -m 0644 "${dir}/config/crd/bases/inference.networking.k8s.io_inferencepools.yaml" \
    "${INFERENCEPOOL_CRD}"
}

has() {
  local bin
  for bin in "$@"; do
    [[ -x "${BIN_DIR}/${bin}" ]] || return 1
  done
}

# Sequential on purpose: CI and dev machines have 2 cores, and go build already uses both.
start=${SECONDS}
has kube-apiserver kube-controller-manager kube-scheduler kubectl || timed "kubernetes ${KUBE_VERSION}" build_kube
has etcd || timed "etcd ${ETCD_VERSION}" build_etcd
has kwok kwokctl || timed "kwok ${KWOK_VERSION}" build_kwok
has helm || timed "helm ${HELM_VERSION}" build_helm
[[ -s "${SERVICEMONITOR_CRD}" ]] || timed "ServiceMonitor CRD ${PROMETHEUS_OPERATOR_VERSION}" fetch_servicemonitor_crd
[[ -s "${INFERENCEPOOL_CRD}" ]] || timed "InferencePool CRD ${INFERENCE_EXTENSION_VERSION}" fetch_inferencepool_crd
cluster_cache_complete || { cluster_log "cache still incomplete in ${CLUSTER_HOME}"; exit 1; }
cluster_log "cache complete in $((SECONDS - start))s: ${BIN_DIR}"
echo "${BIN_DIR}"
