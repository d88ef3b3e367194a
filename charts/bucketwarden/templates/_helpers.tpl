{{/* Chart name, overridable. */}}
{{- define "bucketwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-based, unless the release name already contains the chart name. */}}
{{- define "bucketwarden.fullname" -}}
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

{{- define "bucketwarden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bucketwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bucketwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bucketwarden.labels" -}}
helm.sh/chart: {{ include "bucketwarden.chart" . }}
{{ include "bucketwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "bucketwarden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bucketwarden.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "bucketwarden.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Fail early on combinations the schema cannot express. */}}
{{- define "bucketwarden.validate" -}}
{{- if and (gt (int .Values.sharding.shards) 1) (or .Values.peering.enabled .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "sharding.shards > 1 runs one replica per shard: set replicaCount=1, leaderElection.enabled=false and peering.enabled=false (a dead shard's pod is restarted by its Deployment; only its own objects wait)." }}
{{- end }}
{{- if and .Values.peering.enabled .Values.leaderElection.enabled }}
{{- fail "leaderElection.enabled and peering.enabled are two ways to HA: choose one (leader election scales to 10,000 objects, peering's per-object timers do not)." }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not (or .Values.peering.enabled .Values.leaderElection.enabled)) }}
{{- fail (printf "replicaCount is %d but neither leaderElection.enabled nor peering.enabled is set: more than one replica needs one of them, or the replicas reconcile the same buckets at once. Set leaderElection.enabled=true or replicaCount=1." (int .Values.replicaCount)) }}
{{- end }}
{{- with .Values.leaderElection }}
{{- if and .enabled (not (and (lt (float64 .retrySeconds) (float64 .renewDeadlineSeconds)) (lt (float64 .renewDeadlineSeconds) (float64 .leaseSeconds)))) }}
{{- fail "leaderElection needs retrySeconds < renewDeadlineSeconds < leaseSeconds." }}
{{- end }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled: there is no metrics Service to scrape." }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.health.port)) }}
{{- fail "metrics.port and health.port must differ." }}
{{- end }}
{{- end }}

{{/*
RBAC rules kopf and the operator need. Keep in sync with docs/rbac-minimal.yaml (a test compares them).
Argument: a dict with "ctx" (the root context) and "scope" ("cluster" or "namespace").
*/}}
{{- define "bucketwarden.rbacRules" -}}
{{- $ctx := .ctx -}}
# The ProtectedBuckets: watch them, add kopf's finalizer, write status (kopf's bookkeeping is in status.kopf).
- apiGroups: ["bucketwarden.io"]
  resources: ["protectedbuckets"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["bucketwarden.io"]
  resources: ["protectedbuckets/status"]
  verbs: ["patch"]
# Events about each ProtectedBucket, in its namespace (kopf POSTs core v1 events; it never patches them).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if eq .scope "cluster" }}
# kopf watches the CRDs to notice resources appearing and changing (cluster-scoped; namespaced
# installs do without it: kopf logs a warning and reads them once at start-up).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{ include "bucketwarden.clusterScopedRules" . }}
{{- end }}
{{- if $ctx.Values.peering.enabled }}
# kopf peering: every replica keeps itself alive in the peering object's status.
- apiGroups: ["kopf.dev"]
  resources: [{{ if eq .scope "cluster" }}"clusterkopfpeerings"{{ else }}"kopfpeerings"{{ end }}]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}

{{/*
The peering object is a hook, created after the CRDs exist. Argo CD maps the hook to PostSync; the
sync option lets its dry run pass before the CRD is known.
*/}}
{{- define "bucketwarden.peeringObjectAnnotations" -}}
helm.sh/hook: post-install,post-upgrade
helm.sh/hook-weight: "0"
helm.sh/hook-delete-policy: before-hook-creation
argocd.argoproj.io/sync-options: SkipDryRunOnMissingResource=true
{{- end }}

{{/*
What the operator needs cluster-wide in either install mode, because these objects are cluster-scoped:
- SourceAllowLists: it watches them, keeps kopf's finalizer (deletion waits while a list is in use) and
  writes their status (kopf's bookkeeping included).
- TenantPolicies: it watches them (who may claim what) and writes their status; it never writes their spec.
- Namespaces: it watches their labels, for a TenantPolicy's namespaceSelector.
In a namespaced install these rules go into their own small ClusterRole (cluster-scoped-rbac.yaml).
*/}}
{{- define "bucketwarden.clusterScopedRules" -}}
# SourceAllowLists (cluster-scoped): watch them, hold deletion with kopf's finalizer, write their status.
- apiGroups: ["bucketwarden.io"]
  resources: ["sourceallowlists"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["bucketwarden.io"]
  resources: ["sourceallowlists/status"]
  verbs: ["patch"]
# TenantPolicies (cluster-scoped, written by cluster admins only): read them, write their status.
- apiGroups: ["bucketwarden.io"]
  resources: ["tenantpolicies"]
  verbs: ["list", "watch"]
- apiGroups: ["bucketwarden.io"]
  resources: ["tenantpolicies/status"]
  verbs: ["patch"]
# Namespaces: their labels, for TenantPolicy namespaceSelector.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
