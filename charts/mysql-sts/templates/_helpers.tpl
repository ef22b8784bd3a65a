{{- define "mysql-sts.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The StatefulSet name: pods are <fullname>-<ordinal>. */}}
{{- define "mysql-sts.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mysql-sts.headless" -}}
{{- printf "%s-h" (include "mysql-sts.fullname" .) -}}
{{- end -}}

{{- define "mysql-sts.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mysql-sts.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mysql-sts.labels" -}}
{{ include "mysql-sts.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: database
app.kubernetes.io/part-of: {{ include "mysql-sts.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mysql-sts.secretName" -}}
{{- default (include "mysql-sts.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "mysql-sts.dbImage" -}}
{{- $img := index .Values.image .Values.flavor -}}
{{- printf "%s:%s" $img.repository $img.tag -}}
{{- end -}}

{{- define "mysql-sts.agentImage" -}}
{{- printf "%s:%s" .Values.agent.image.repository (default .Chart.AppVersion .Values.agent.image.tag) -}}
{{- end -}}

{{/* The agent's settings, shared by init and the sidecar. */}}
{{- define "mysql-sts.initEnv" -}}
{{ include "mysql-sts.agentEnv" . }}
- name: MYSQL_STS_DONOR_TIMEOUT
  value: {{ .Values.agent.donorTimeout | quote }}
- name: MYSQL_STS_CLONE_COMPRESSION
  value: {{ .Values.agent.cloneCompression | quote }}
# Init makes the datadir in the volume (and moves in the data an earlier
# chart kept at the volume's root).
- name: MYSQL_STS_VOLUME_ROOT
  value: /var/lib/mysql
{{- if .Values.backup.enabled }}
- name: MYSQL_STS_SEED_FROM
  value: {{ .Values.backup.seedFrom | quote }}
{{- end }}
{{- with .Values.restore.url }}
- name: MYSQL_STS_RESTORE_URL
  value: {{ . | quote }}
{{- with $.Values.restore.backup }}
- name: MYSQL_STS_RESTORE_BACKUP
  value: {{ . | quote }}
{{- end }}
{{- with $.Values.restore.toTime }}
- name: MYSQL_STS_RESTORE_TO_TIME
  value: {{ . | quote }}
{{- end }}
{{- with $.Values.restore.toGtid }}
{{- if $.Values.restore.toTime }}
{{- fail "mysql-sts: restore.toTime and restore.toGtid name two targets: set one" }}
{{- end }}
- name: MYSQL_STS_RESTORE_TO_GTID
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Whether the agents reach a bucket: for backups, or a restore. */}}
{{- define "mysql-sts.bucket" -}}
{{- if or .Values.backup.enabled .Values.restore.url }}true{{ end -}}
{{- end -}}

{{/* Where the bucket is and how to log in; in every container the agent runs in. */}}
{{- define "mysql-sts.backupEnv" -}}
{{- if .Values.backup.enabled }}
- name: MYSQL_STS_BACKUP_URL
  value: {{ required "backup.url is required with backup.enabled (s3://<bucket>[/<prefix>])" .Values.backup.url | quote }}
{{- end }}
{{- if include "mysql-sts.bucket" . }}
{{- with .Values.backup.endpoint }}
- name: MYSQL_STS_BACKUP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: MYSQL_STS_BACKUP_REGION
  value: {{ .Values.backup.region | quote }}
- name: MYSQL_STS_BACKUP_ACCESS_KEY_FILE
  value: /etc/mysql-sts/backup/access-key
- name: MYSQL_STS_BACKUP_SECRET_KEY_FILE
  value: /etc/mysql-sts/backup/secret-key
{{- with .Values.backup.caKey }}
- name: MYSQL_STS_BACKUP_CA_FILE
  value: {{ printf "/etc/mysql-sts/backup/%s" . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "mysql-sts.agentEnv" -}}
# The datadir is a directory in the volume: a filesystem's lost+found at the
# volume's root stays out of it.
- name: MYSQL_STS_DATADIR
  value: /var/lib/mysql/mysql-data
- name: MYSQL_STS_SERVICE
  value: {{ include "mysql-sts.headless" . | quote }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: MYSQL_STS_CLUSTER_DOMAIN
  value: {{ .Values.clusterDomain | quote }}
- name: MYSQL_STS_FLAVOR
  value: {{ .Values.flavor | quote }}
- name: MYSQL_STS_SERVER_ID_BASE
  value: {{ .Values.serverIdBase | quote }}
- name: MYSQL_STS_MYSQL_PORT
  value: {{ .Values.mysqlPort | quote }}
- name: MYSQL_STS_AGENT_PORT
  value: {{ .Values.agent.port | quote }}
- name: MYSQL_STS_REPLICATION_USER
  value: {{ .Values.replicationUser | quote }}
- name: MYSQL_STS_ROOT_PASSWORD_FILE
  value: /etc/mysql-sts/secrets/root-password
- name: MYSQL_STS_REPLICATION_PASSWORD_FILE
  value: /etc/mysql-sts/secrets/replication-password
- name: MYSQL_STS_CLONE_TOKEN_FILE
  value: /etc/mysql-sts/secrets/clone-token
- name: MYSQL_STS_LOG_FORMAT
  value: {{ .Values.agent.logFormat | quote }}
# Every pod exists from the start: an empty mysql-0 hears from each, and the
# master keeps binary logs for each replica.
- name: MYSQL_STS_REPLICAS
  value: {{ .Values.replicas | quote }}
{{- if .Values.semiSync.enabled }}
- name: MYSQL_STS_SEMI_SYNC
  value: "true"
- name: MYSQL_STS_SEMI_SYNC_WAIT_FOR
  value: {{ .Values.semiSync.waitFor | quote }}
{{- with .Values.semiSync.timeout }}
- name: MYSQL_STS_SEMI_SYNC_TIMEOUT
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: MYSQL_STS_TLS_CERT_FILE
  value: /etc/mysql-sts/tls/tls.crt
- name: MYSQL_STS_TLS_KEY_FILE
  value: /etc/mysql-sts/tls/tls.key
- name: MYSQL_STS_TLS_CA_FILE
  value: /etc/mysql-sts/tls/ca.crt
{{- end }}
{{- include "mysql-sts.backupEnv" . }}
{{- end -}}

{{- define "mysql-sts.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "mysql-sts.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "mysql-sts.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/* Fails the render when generated secrets could not be kept: a render
that cannot read the cluster (helm template, --dry-run, Argo CD, Flux) would
make new ones every time, and pods restarted later would be locked out.
Called with (dict "root" . "what" ... "fix" ...). */}}
{{- define "mysql-sts.keepableOrFail" -}}
{{- if and (not (include "mysql-sts.readsCluster" .root)) (not .root.Values.renderOffline) -}}
{{- fail (printf "mysql-sts: %s would be generated anew at every render, and this render cannot read the cluster to keep them (helm template, --dry-run, Argo CD, Flux): pods restarted later would be locked out. Create the Secret yourself and set %s (README, Helm chart); renderOffline=true renders anyway, to look at the manifests, never to apply them" .what .fix) -}}
{{- end -}}
{{- end -}}

{{/* "true" when this render reads the cluster (helm install and upgrade);
empty for one that cannot (helm template, --dry-run, Argo CD, Flux). */}}
{{- define "mysql-sts.readsCluster" -}}
{{- if lookup "v1" "Namespace" "" "kube-system" }}true{{ end -}}
{{- end -}}

{{/* Fails the render when an existing Secret the values name is missing, or
lacks a key the pods read: the pods would otherwise wait in ContainerCreating
for a volume that can never mount. Only a render that can read the cluster
checks. Called with (dict "root" . "name" ... "keys" (list ...) "value" ...). */}}
{{- define "mysql-sts.existingSecretOrFail" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $value := .value -}}
{{- if include "mysql-sts.readsCluster" $root -}}
{{- $secret := lookup "v1" "Secret" $root.Release.Namespace $name -}}
{{- if not $secret -}}
{{- fail (printf "mysql-sts: %s is %q, but no Secret of that name exists in namespace %q: create it first, with the keys %s" $value $name $root.Release.Namespace (join ", " .keys)) -}}
{{- end -}}
{{- range .keys -}}
{{- if not (hasKey ($secret.data | default dict) .) -}}
{{- fail (printf "mysql-sts: the Secret %q (%s) has no key %q; it needs %s" $name $value . (join ", " $.keys)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* How many replicas a commit waits for under semi-sync: MariaDB one, MySQL semiSync.waitFor. */}}
{{- define "mysql-sts.semiSyncNeed" -}}
{{- if eq .Values.flavor "mysql" }}{{ max 1 (int .Values.semiSync.waitFor) }}{{ else }}1{{ end -}}
{{- end -}}

{{/* Refuses semi-sync settings under which no commit is ever acknowledged. */}}
{{- define "mysql-sts.semiSyncOrFail" -}}
{{- if and .Values.semiSync.enabled (gt (int .Values.replicas) 0) -}}
{{- $need := int (include "mysql-sts.semiSyncNeed" .) -}}
{{- if le (int .Values.replicas) $need -}}
{{- fail (printf "mysql-sts: semiSync.enabled with replicas: %d leaves %d replica(s), and every commit waits for %d: the first write would wait for ever. Set replicas to at least %d, lower semiSync.waitFor (MySQL), or turn semiSync off" (int .Values.replicas) (sub (int .Values.replicas) 1) $need (add $need 1)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Fails an upgrade of a StatefulSet made with podManagementPolicy
OrderedReady (an earlier chart's, or one made by hand): the field cannot
change in place, and Kubernetes' own refusal does not say what to do. Only a
render that can read the cluster checks. */}}
{{- define "mysql-sts.podPolicyOrFail" -}}
{{- $name := include "mysql-sts.fullname" . -}}
{{- $sts := lookup "apps/v1" "StatefulSet" .Release.Namespace $name -}}
{{- if and $sts (ne ($sts.spec.podManagementPolicy | default "OrderedReady") "Parallel") -}}
{{- fail (printf "mysql-sts: the StatefulSet %q was made with podManagementPolicy %s, and this chart runs Parallel only (an empty mysql-0 must hear from every pod), a field Kubernetes will not change in place. Delete the StatefulSet and keep its pods and volumes: kubectl -n %s delete statefulset %s --cascade=orphan, then run this upgrade again; the new StatefulSet adopts the pods and their claims" $name ($sts.spec.podManagementPolicy | default "OrderedReady") .Release.Namespace $name) -}}
{{- end -}}
{{- end -}}
