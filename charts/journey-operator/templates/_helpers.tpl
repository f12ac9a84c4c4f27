{{/* The image reference: repository[:tag][@digest]; the tag defaults to the appVersion. */}}
{{- define "journey-operator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- if .Values.image.tag -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- end -}}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the engine runs inside the controller. */}}
{{- define "journey-operator.embedded" -}}
{{- if eq .Values.engine.mode "embedded" }}true{{ end -}}
{{- end -}}

{{/* True (non-empty) when this release runs `journey-operator engine`. */}}
{{- define "journey-operator.engineDeployed" -}}
{{- if and (eq .Values.engine.mode "remote") .Values.engine.deploy }}true{{ end -}}
{{- end -}}

{{/* The name of the PersistentVolumeClaim of the engine's SQLite file. */}}
{{- define "journey-operator.claim" -}}
{{- .Values.storage.existingClaim | default "journey-operator-data" -}}
{{- end -}}

{{/* The documents of a multi-document YAML file of files/, parsed (comments are dropped). */}}
{{- define "journey-operator.docs" -}}
{{- $docs := list -}}
{{- range regexSplit "(?m)^---[ \t]*$" . -1 -}}
{{- $doc := fromYaml . -}}
{{- if $doc -}}{{- $docs = append $docs $doc -}}{{- end -}}
{{- end -}}
{{- toJson $docs -}}
{{- end -}}

{{/* Pod placement and annotations shared by the controller and the engine. */}}
{{- define "journey-operator.podPlacement" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
