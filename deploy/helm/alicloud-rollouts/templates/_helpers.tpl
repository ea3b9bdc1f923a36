{{/* The name of every object: the release name, with the chart's name unless it holds it. */}}
{{- define "alicloud-rollouts.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "alicloud-rollouts.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "alicloud-rollouts.labels" -}}
{{ include "alicloud-rollouts.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "alicloud-rollouts.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "alicloud-rollouts.credentialsSecret" -}}
{{- .Values.credentials.secret.name | default (printf "%s-credentials" (include "alicloud-rollouts.fullname" .)) -}}
{{- end -}}

{{/*
The operator's rules, the same as deploy/rbac.yaml's ClusterRole. With watchNamespaces
they are granted per namespace (a Role each), else cluster-wide.
*/}}
{{- define "alicloud-rollouts.rules" -}}
# The three kinds: the watch of each controller (a list, then a watch).
- apiGroups: ["rollouts.alicloud.dev"]
  resources: ["easservicerollouts", "esaroutinerollouts", "esacontainerapprollouts"]
  verbs: ["list", "watch"]
# The cleanup finalizer, added and removed with a JSON patch (only EasServiceRollout has
# a cleanup: deletionPolicy).
- apiGroups: ["rollouts.alicloud.dev"]
  resources: ["easservicerollouts"]
  verbs: ["patch"]
# Their status, written with server-side apply.
- apiGroups: ["rollouts.alicloud.dev"]
  resources: ["easservicerollouts/status", "esaroutinerollouts/status", "esacontainerapprollouts/status"]
  verbs: ["patch"]
# Analysis templates: read by name when an analysis runs.
- apiGroups: ["rollouts.alicloud.dev"]
  resources: ["analysistemplates", "clusteranalysistemplates"]
  verbs: ["get"]
# Per-resource credentials (spec.credentialsSecretRef) and
# analysis template Secrets: read by name, never listed.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# An Event for each cloud mutation and each failure; a repeated failure is one series.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The default cluster id of ownership markers (docs/ownership.md): the uid of namespace
kube-system, read once at start; not granted when clusterId is set. */}}
{{- define "alicloud-rollouts.clusterIdRule" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  resourceNames: ["kube-system"]
  verbs: ["get"]
{{- end -}}
