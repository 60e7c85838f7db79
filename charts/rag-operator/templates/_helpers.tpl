{{/* Chart name, overridable with nameOverride. */}}
{{- define "rag-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name when it already contains the chart name,
else <release>-<chart>. Truncated so the longest suffix (-controller-manager, 19) still fits
the 63-character name limit of Services and labels.
*/}}
{{- define "rag-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 44 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 44 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 44 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rag-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "rag-operator.labels" -}}
helm.sh/chart: {{ include "rag-operator.chart" . }}
{{ include "rag-operator.instanceLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rag-operator
{{- end }}

{{- define "rag-operator.instanceLabels" -}}
app.kubernetes.io/name: {{ include "rag-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of the manager pods (immutable on the Deployment: never add to these). */}}
{{- define "rag-operator.selectorLabels" -}}
{{ include "rag-operator.instanceLabels" . }}
control-plane: controller-manager
{{- end }}

{{/* Labels of the metrics Service, which the ServiceMonitor selects. */}}
{{- define "rag-operator.metricsLabels" -}}
{{ include "rag-operator.instanceLabels" . }}
app.kubernetes.io/component: metrics
{{- end }}

{{- define "rag-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "rag-operator.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rag-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default (printf "v%s" .Chart.AppVersion)) }}
{{- end }}

{{/*
crdOwner: who owns the CRD named .name when it is not this release (.ctx): "release X in
namespace Y", or a sentence for a CRD applied outside Helm. Empty when this release installs
and upgrades it: the CRD does not exist yet, or it carries this release's meta.helm.sh/release-*
annotations. `lookup` sees no cluster under `helm template` and client-side dry runs, so there
the CRD is always rendered.
*/}}
{{- define "rag-operator.crdOwner" -}}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" .name }}
{{- if $crd }}
{{- $ann := $crd.metadata.annotations | default dict }}
{{- $rel := index $ann "meta.helm.sh/release-name" | default "" }}
{{- $ns := index $ann "meta.helm.sh/release-namespace" | default "" }}
{{- if not $rel }}
{{- "no Helm release (it was applied outside Helm, e.g. with kubectl apply -k config/default)" }}
{{- else if not (and (eq $rel .ctx.Release.Name) (eq $ns .ctx.Release.Namespace)) }}
{{- printf "release %s in namespace %s" $rel $ns }}
{{- end }}
{{- end }}
{{- end }}

{{/*
clusterScopedResources: the RBAC resources that are cluster-scoped. With watchNamespaces the
generated rules on these stay in a ClusterRole; every other rule goes into a Role per namespace.
*/}}
{{- define "rag-operator.clusterScopedResources" -}}
{{- list "nodes" "namespaces" "persistentvolumes" "storageclasses" "csinodes" "csidrivers" "volumeattachments"
  "customresourcedefinitions" "clusterroles" "clusterrolebindings" "priorityclasses" "runtimeclasses"
  "ingressclasses" "certificatesigningrequests" "tokenreviews" "subjectaccessreviews"
  "selfsubjectaccessreviews" "selfsubjectrulesreviews" "mutatingwebhookconfigurations"
  "validatingwebhookconfigurations" "apiservices" | toJson }}
{{- end }}

{{/* Name of the metrics port on the container and the Service. */}}
{{- define "rag-operator.metricsPortName" -}}
{{- if .Values.metrics.secure }}https{{ else }}http-metrics{{ end }}
{{- end }}
