{{/*
Value of the `app` and `chart` labels: workload-identity-webhook, as upstream's chart, so that
`kubectl -l app=workload-identity-webhook` runbooks keep working.
*/}}
{{- define "azwi.name" -}}
{{- default "workload-identity-webhook" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name prefix of the objects upstream's chart does not have.
*/}}
{{- define "azwi.fullname" -}}
{{- default "azure-wi-webhook" .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: upstream's four, unchanged, so a Deployment installed by upstream's chart can be
upgraded in place (a Deployment's selector is immutable).
*/}}
{{- define "azwi.selectorLabels" -}}
app: {{ include "azwi.name" . | quote }}
azure-workload-identity.io/system: "true"
chart: {{ include "azwi.name" . | quote }}
release: {{ .Release.Name | quote }}
{{- end }}

{{/*
Labels of every object: the selector labels plus the recommended app.kubernetes.io ones.
*/}}
{{- define "azwi.labels" -}}
{{ include "azwi.selectorLabels" . }}
app.kubernetes.io/name: {{ include "azwi.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: azure-workload-identity
{{- end }}

{{/* Names shared with upstream's chart (the webhook also knows them). */}}
{{- define "azwi.serviceName" -}}azure-wi-webhook-webhook-service{{- end }}
{{- define "azwi.secretName" -}}azure-wi-webhook-server-cert{{- end }}
{{- define "azwi.mwcName" -}}azure-wi-webhook-mutating-webhook-configuration{{- end }}
{{- define "azwi.serviceAccountName" -}}azure-wi-webhook-admin{{- end }}
{{- define "azwi.certificateName" -}}{{ include "azwi.fullname" . }}-serving-cert{{- end }}

{{/*
The tenant, required. Fails the render with the fix when it is missing.
*/}}
{{- define "azwi.tenantID" -}}
{{- required "azureTenantID is required: set it to the Microsoft Entra tenant ID that ServiceAccounts without an azure.workload.identity/tenant-id annotation use, e.g. --set azureTenantID=$(az account show --query tenantId -o tsv)" .Values.azureTenantID }}
{{- end }}

{{/* image reference: repository@digest or repository:tag (tag defaults to appVersion). */}}
{{- define "azwi.imageRef" -}}
{{- $repo := index . 0 -}}{{- $tag := index . 1 -}}{{- $digest := index . 2 -}}{{- $app := index . 3 -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default $app $tag) -}}
{{- end -}}
{{- end }}

{{- define "azwi.image" -}}
{{- include "azwi.imageRef" (list .Values.image.repository .Values.image.release .Values.image.digest .Chart.AppVersion) }}
{{- end }}
{{- define "azwi.proxyImage" -}}
{{- include "azwi.imageRef" (list .Values.proxy.image.repository .Values.proxy.image.tag "" .Chart.AppVersion) }}
{{- end }}
{{- define "azwi.proxyInitImage" -}}
{{- include "azwi.imageRef" (list .Values.proxy.initImage.repository .Values.proxy.initImage.tag "" .Chart.AppVersion) }}
{{- end }}

{{/* Port number of an address such as ":8095" or "0.0.0.0:8095". */}}
{{- define "azwi.port" -}}
{{- regexReplaceAll "^.*:" . "" -}}
{{- end }}

{{/*
Refuses values that would break the chart's own wiring, with the fix.
*/}}
{{- define "azwi.validate" -}}
{{- range .Values.extraEnv }}
{{- if eq (toString .name) "POD_NAMESPACE" }}
{{- fail "extraEnv: POD_NAMESPACE is set by the chart from the pod's namespace; remove it from extraEnv" }}
{{- end }}
{{- end }}
{{- range .Values.extraVolumes }}
{{- if eq (toString .name) "cert" }}
{{- fail "extraVolumes: the volume name \"cert\" is used by the chart for the serving certificate; choose another name" }}
{{- end }}
{{- end }}
{{- range .Values.extraVolumeMounts }}
{{- if eq (toString .name) "cert" }}
{{- fail "extraVolumeMounts: the volume name \"cert\" is used by the chart for the serving certificate; choose another name" }}
{{- end }}
{{- end }}
{{- include "azwi.validateImage" . }}
{{- $cte := .Values.customTokenEndpoint }}
{{- if and $cte.annotationSuffix (not $cte.audience) }}
{{- fail "customTokenEndpoint: annotationSuffix is set but audience is empty; set both (e.g. audience: api://AKSIdentityBinding) or neither" }}
{{- end }}
{{- if and $cte.audience (not $cte.annotationSuffix) }}
{{- fail "customTokenEndpoint: audience is set but annotationSuffix is empty; set both (e.g. annotationSuffix: identity-binding) or neither" }}
{{- end }}
{{- end }}

{{/*
Refuses upstream's webhook image. An upstream values file carries image.repository
(mcr.microsoft.com/oss/azure/workload-identity/webhook, or a mirror of that path) and image.release
(v1.x); upstream's image runs /manager, whose flag parser would stop at this chart's first argument
and silently ignore the rest. Our published repository has only our own (v0.x) tags, so upstream's
release number with it is refused too (a private registry's tags are the user's choice). The Deployment also sets command: ["/azure-wi"], so an image that is
not ours fails to start instead of running something else with these arguments.
*/}}
{{- define "azwi.validateImage" -}}
{{- $repo := toString .Values.image.repository }}
{{- $ours := "ghcr.io/azure-wi/webhook" }}
{{- if or (hasPrefix "mcr.microsoft.com/" $repo) (regexMatch "(^|/)oss/azure/workload-identity/" $repo) (regexMatch "(^|/)workload-identity/webhook$" $repo) }}
{{- fail (printf "image.repository %q is upstream's azure-workload-identity webhook image: it runs upstream's /manager, which ignores this chart's arguments. Set image.repository to %s (or your registry's copy of it, see docs/install.md) and remove image.release, so the chart's appVersion %s is used" $repo $ours .Chart.AppVersion) }}
{{- end }}
{{- $release := toString (default "" .Values.image.release) }}
{{- $major := regexFind "^v?[0-9]+" $release | trimPrefix "v" }}
{{- $appMajor := regexFind "^v?[0-9]+" .Chart.AppVersion | trimPrefix "v" }}
{{- if and (eq $repo $ours) $major (ne $major $appMajor) }}
{{- fail (printf "image.release %q is not a release of this chart's webhook image (appVersion %s); it looks like upstream's version from an upstream values file. Remove image.release (the chart's appVersion is used) or set it to a %s tag of %s" $release .Chart.AppVersion (printf "v%s.x" $appMajor) $ours) }}
{{- end }}
{{- end }}
