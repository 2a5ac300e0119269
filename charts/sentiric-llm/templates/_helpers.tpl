{{/* Helpers for the sentiric-llm chart; every name is prefixed with the chart name. */}}

{{/* The chart name, truncated to a DNS label. */}}
{{- define "sentiric-llm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name used as prefix of every object. Truncated to 63 characters because some
Kubernetes name fields are DNS labels; the release name alone when it already contains
the chart name, so `helm install sentiric-llm` does not give "sentiric-llm-sentiric-llm".
*/}}
{{- define "sentiric-llm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The full name with a suffix, still within 63 characters. */}}
{{- define "sentiric-llm.suffixed" -}}
{{- $suffix := printf "-%s" .suffix }}
{{- $base := include "sentiric-llm.fullname" .root | trunc (int (sub 63 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s%s" $base $suffix }}
{{- end }}

{{/* chart label value: name-version, '+' is not allowed in label values. */}}
{{- define "sentiric-llm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels of the LLMProfiles the release creates. */}}
{{- define "sentiric-llm.commonLabels" -}}
helm.sh/chart: {{ include "sentiric-llm.chart" . }}
app.kubernetes.io/name: {{ include "sentiric-llm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sentiric-llm
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "sentiric-llm.labels" -}}
helm.sh/chart: {{ include "sentiric-llm.chart" . }}
{{ include "sentiric-llm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sentiric-llm
{{- end }}

{{/*
Labels that select the operator pod; immutable once a Deployment exists. The name is not
plain "sentiric-llm": inference Services select {name: sentiric-llm, instance: <profile>},
and a profile named like the release must not pull the operator pod into its Service.
*/}}
{{- define "sentiric-llm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentiric-llm.name" . | trunc 54 | trimSuffix "-" }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "sentiric-llm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sentiric-llm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "sentiric-llm.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "sentiric-llm.operatorImage" -}}
{{- include "sentiric-llm.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "sentiric-llm.inferenceImage" -}}
{{- include "sentiric-llm.imageRef" (dict "image" .Values.inferenceImage "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/*
The CUDA build for GPU profiles. Empty fields follow inferenceImage the way the images are
published (docs/kubernetes.md): same repository, tag suffixed "-cuda"; so pointing
inferenceImage at a private registry moves both images. A digest is never inherited.
*/}}
{{- define "sentiric-llm.inferenceImageCuda" -}}
{{- $cpu := .Values.inferenceImage }}
{{- /* default dict: an upgrade with --reuse-values from a chart without this block. */}}
{{- $cuda := .Values.inferenceImageCuda | default dict }}
{{- $image := dict "repository" (default $cpu.repository $cuda.repository) "tag" $cuda.tag "digest" $cuda.digest }}
{{- $tag := printf "%s-cuda" (default .Chart.AppVersion $cpu.tag) }}
{{- include "sentiric-llm.imageRef" (dict "image" $image "appVersion" $tag) }}
{{- end }}

{{/*
Namespaced rules, read off operator/sentiric_operator/{kubeapi,handlers}.py and kopf itself.
Rendered into the ClusterRole (cluster-wide) or into one Role per watched namespace; the
helm end-to-end test runs the operator under exactly these rules.
*/}}
{{- define "sentiric-llm.namespacedRules" -}}
# kopf watches profiles and patches its progress annotations onto them; the operator reads
# one back before repairing a child.
- apiGroups: [llm.sentiric.ai]
  resources: [llmprofiles]
  verbs: [get, list, watch, patch]
# Conditions, endpoints and replicas.
- apiGroups: [llm.sentiric.ai]
  resources: [llmprofiles/status]
  verbs: [patch]
# Children carry a controller ownerReference with blockOwnerDeletion, which clusters running
# the OwnerReferencesPermissionEnforcement admission plugin allow only with this.
- apiGroups: [llm.sentiric.ai]
  resources: [llmprofiles/finalizers]
  verbs: [update]
# Children written by server-side apply: patch, plus create for the first apply. ConfigMaps,
# Services and Deployments are also watched (kopf index and drift repair).
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [list, watch, create, patch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch]
# Pods are only read, to explain in the status why a profile is not ready yet.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# One per profile with more than one replica; deleted when it scales down to one.
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [create, patch, delete]
# spec.autoscaling; deleted when a profile drops it.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [create, patch, delete]
# Deleted when a profile switches monitoring off.
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [create, patch, delete]
# The Gateway API Inference Extension's pool, where its CRD is; deleted when switched off.
- apiGroups: [inference.networking.k8s.io]
  resources: [inferencepools]
  verbs: [create, patch, delete]
# kopf posts handler errors as core/v1 Events on the profile.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
Impossible value combinations, checked once by the Deployment template so every render
fails early with a message naming the values involved.
*/}}
{{- define "sentiric-llm.validate" -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) }}
{{- fail "metrics.serviceMonitor.enabled is true but the cluster has no monitoring.coreos.com/v1 ServiceMonitor CRD: install the Prometheus Operator CRDs first (with `helm template`, pass --api-versions monitoring.coreos.com/v1/ServiceMonitor)" }}
{{- end }}
{{- if .Values.watchNamespaces }}
{{- $watched := .Values.watchNamespaces }}
{{- range .Values.profiles }}
{{- $ns := default $.Release.Namespace .namespace }}
{{- if not (has $ns $watched) }}
{{- fail (printf "profiles: %q is in namespace %q, which is not in watchNamespaces %v; no operator would reconcile it" .name $ns $watched) }}
{{- end }}
{{- end }}
{{- end }}
{{- $seen := dict }}
{{- range .Values.profiles }}
{{- $key := printf "%s/%s" (default $.Release.Namespace .namespace) .name }}
{{- if hasKey $seen $key }}
{{- fail (printf "profiles: %q is listed twice" $key) }}
{{- end }}
{{- $_ := set $seen $key true }}
{{- end }}
{{- end }}
