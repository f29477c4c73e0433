{{/*
Labels on every object's metadata: the kustomize base's (part-of, version, and the
component where the base has one) plus Helm's own three (managed-by, instance, chart) -
the only intended difference from the base (tests/unit/test_helm_chart.py).
Call with (dict "ctx" $ "component" "watcher"); component may be "".
*/}}
{{- define "vpcnet.labels" -}}
app.kubernetes.io/part-of: vpcnet
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Pod and selector labels of a component (not Helm's: selectors are immutable). */}}
{{- define "vpcnet.selectorLabels" -}}
app.kubernetes.io/name: vpcnet
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* The vpcnet image, its tag defaulting to the chart's appVersion. */}}
{{- define "vpcnet.image" -}}
image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) | quote }}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{- define "vpcnet.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Tolerations of the control plane: it runs before any node has pod networking. */}}
{{- define "vpcnet.controlPlaneTolerations" -}}
tolerations:
  - {key: vpcnet.io/not-ready, operator: Exists, effect: NoSchedule}
  - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoSchedule}
{{- end }}

{{/* The non-root pod securityContext of watcher, workers, beat and flower. */}}
{{- define "vpcnet.nonRootPodSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
{{- end }}

{{/* The container securityContext of every control-plane container. */}}
{{- define "vpcnet.restrictedContainerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end }}

{{/* A Redis URL from the credentials Secret: name of the env var, key in the Secret. */}}
{{- define "vpcnet.redisUrlEnv" -}}
- name: {{ .name }}
  valueFrom: {secretKeyRef: {name: {{ .ctx.Values.redis.credentialsSecret }}, key: {{ .key }}}}
{{- end }}

{{/*
The credential issuer's fixed contract with the agents (templates/credentials.yaml,
templates/agent.yaml): its HTTPS port, the audience of the agents' projected token, and
the URL the agents reach it at - the Service's name in namespace.name, which is also the
name its TLS certificate must carry (docs/deploy.md, step 4).
*/}}
{{- define "vpcnet.credentialsPort" -}}
8443
{{- end }}

{{- define "vpcnet.credentialsAudience" -}}
vpcnet-credentials
{{- end }}

{{- define "vpcnet.credentialsUrl" -}}
{{ printf "https://vpcnet-credentials.%s.svc:%s" .Values.namespace.name (include "vpcnet.credentialsPort" .) }}
{{- end }}
