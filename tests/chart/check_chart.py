#!/usr/bin/env python3
"""Checks the Helm chart with the real Helm engine (helm-python-sdk): lints it,
renders it for the default values and realistic variants, validates every
rendered object strictly against the Kubernetes schemas (kubernetes-validate),
checks what each variant must change, that bad values are refused, and that
the pod runs the agent exactly as the docker compose cluster does."""

import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml
from helm_python import chart as helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mysql-sts"
AGENT = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "target" / "debug" / "mysql-sts"

VARIANTS = {
    "default": {},
    "mariadb": {"flavor": "mariadb"},
    "semi-sync": {"semiSync": {"enabled": True, "waitFor": 2, "timeout": "10s"}},
    "existing-secret": {"auth": {"existingSecret": "db-credentials"}},
    "five-replicas": {"replicas": 5},
    "stopped": {"replicas": 0},
    "network-policy": {"networkPolicy": {
        "enabled": True,
        "clients": [{"podSelector": {"matchLabels": {"app": "web"}}}],
        "metrics": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }},
    "monitored": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "alerting": {"prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
                 "grafanaDashboard": {"enabled": True}},
    "self-healing": {"agent": {"autoReclone": {"enabled": True, "interval": "30m"}}},
    "plain-http": {"tls": {"enabled": False}},
    "cert-manager-tls": {"tls": {"existingSecret": "db-agent-tls"}},
    "backups": {"backup": {"enabled": True, "url": "s3://db-backups/prod", "endpoint": "https://minio.backup:9000",
                           "existingSecret": "db-s3", "caKey": "ca.crt", "schedule": "0 3 * * *",
                           "keep": 14, "maxAge": "30d", "seedFrom": "backup"}},
    "restored": {"backup": {"endpoint": "https://minio.backup:9000", "existingSecret": "db-s3"},
                 "restore": {"url": "s3://db-backups/prod", "toTime": "2026-12-07T10:15:00Z"}},
}
# CRDs have no schema in the Kubernetes set: checked by shape below instead.
CRD_GROUPS = ("monitoring.coreos.com/",)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}")


def k8s_version():
    """The newest Kubernetes version the installed schemas know."""
    return kubernetes_validate.utils.latest_version()


def render(values, offline=True):
    """Renders as `helm template` does, without a cluster: generated secrets
    only with renderOffline (the variants look at what they would be)."""
    if offline and "renderOffline" not in values:
        values = {**values, "renderOffline": True}
    out = helm.Chart.load(str(CHART)).render(values, name="db", namespace="prod", is_install=True)
    objs = []
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        objs += [o for o in yaml.safe_load_all(text) if o]
    return objs


def notes(values):
    """The NOTES.txt an install prints."""
    out = helm.Chart.load(str(CHART)).render({**values, "renderOffline": True}, name="db",
                                             namespace="prod", is_install=True)
    return next(text for path, text in out.items() if path.endswith("NOTES.txt"))


def check_semi_sync():
    """Semi-sync that can never acknowledge a commit is refused by name; one
    with no replica to spare and no timeout installs with a warning."""
    for bad in ({"flavor": "mariadb", "replicas": 1}, {"flavor": "mysql", "replicas": 1},
                {"flavor": "mysql", "replicas": 2, "semiSync": {"waitFor": 2}}):
        values = {**bad, "semiSync": {"enabled": True, **bad.get("semiSync", {})}}
        try:
            render(values)
            check(False, f"semi-sync values {bad} were accepted")
        except Exception as e:  # the engine raises its own error types
            check("the first write would wait for ever" in str(e), f"semi-sync values {bad}: unclear error {e}")
    stopped = render({"replicas": 0, "semiSync": {"enabled": True}})
    check(by_kind(stopped, "StatefulSet")[0]["spec"]["replicas"] == 0, "semi-sync with every pod stopped renders")
    warning = "no replica to spare and no semiSync.timeout"
    check(warning in notes({"replicas": 2, "semiSync": {"enabled": True}}), "a 2-pod semi-sync cluster is warned of")
    check(warning not in notes({"replicas": 2, "semiSync": {"enabled": True, "timeout": "10s"}}),
          "a 2-pod semi-sync cluster with a timeout is not warned of")
    check(warning not in notes({"replicas": 3, "semiSync": {"enabled": True}}), "3 pods are not warned of")
    print("ok   semi-sync settings that can never acknowledge a commit are refused; no replica to spare is warned of")


def check_backup():
    """Backups: the bucket's settings and keys reach every container the agent
    runs in, the schedule only the sidecar, the seed only init; a bucket URL or
    schedule the agent would refuse is refused at install, and so are backups
    without a bucket or keys."""
    objs = render(VARIANTS["backups"])
    spec = by_kind(objs, "StatefulSet")[0]["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec["initContainers"] + spec["containers"]}
    store = {"MYSQL_STS_BACKUP_URL", "MYSQL_STS_BACKUP_ENDPOINT", "MYSQL_STS_BACKUP_REGION",
             "MYSQL_STS_BACKUP_ACCESS_KEY_FILE", "MYSQL_STS_BACKUP_SECRET_KEY_FILE", "MYSQL_STS_BACKUP_CA_FILE"}
    for name in ("init", "server", "agent"):
        c = containers[name]
        check(store <= env_names(c), f"backups: {name} has the bucket's settings")
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        check(mounts.get("backup-credentials", {}).get("mountPath") == "/etc/mysql-sts/backup",
              f"backups: {name} mounts the keys")
        check(("MYSQL_STS_SEED_FROM" in env_names(c)) == (name != "agent"), f"backups: the seed is init's ({name})")
        check(("MYSQL_STS_BACKUP_SCHEDULE" in env_names(c)) == (name == "agent"),
              f"backups: the schedule is the sidecar's ({name})")
    volume = [v for v in spec["volumes"] if v["name"] == "backup-credentials"]
    check(volume and volume[0]["secret"]["secretName"] == "db-s3", "backups: the keys' Secret is mounted")
    env = {e["name"]: e.get("value") for e in containers["agent"]["env"]}
    check(env["MYSQL_STS_BACKUP_CA_FILE"] == "/etc/mysql-sts/backup/ca.crt", "backups: the CA file")
    check(env["MYSQL_STS_BACKUP_SCHEDULE"] == "0 3 * * *", "backups: the schedule")
    check(env.get("MYSQL_STS_BINLOG_ARCHIVE") == "true", "backups: the binary log archive")
    restored = by_kind(render(VARIANTS["restored"]), "StatefulSet")[0]["spec"]["template"]["spec"]
    init = {e["name"]: e.get("value") for e in restored["initContainers"][1]["env"]}
    check(init.get("MYSQL_STS_RESTORE_URL") == "s3://db-backups/prod"
          and init.get("MYSQL_STS_RESTORE_TO_TIME") == "2026-12-07T10:15:00Z"
          and init.get("MYSQL_STS_BACKUP_ACCESS_KEY_FILE") and "MYSQL_STS_BACKUP_URL" not in init,
          f"restore: init restores from the other release's bucket: {init}")
    check(any(v["name"] == "backup-credentials" for v in restored["volumes"]), "restore: the keys are mounted")
    off = by_kind(render({}), "StatefulSet")[0]["spec"]["template"]["spec"]
    check(not any("BACKUP" in n for c in off["containers"] for n in env_names(c)), "no backup settings when off")
    good = VARIANTS["backups"]["backup"]
    for bad, says in (({"url": ""}, "backup.url is required"), ({"existingSecret": ""}, "backup.existingSecret"),
                      ({"url": "https://s3.amazonaws.com/b"}, "/backup/url"), ({"schedule": "daily"}, "/backup/schedule"),
                      ({"seedFrom": "n-1"}, "/backup/seedFrom"), ({"binlogArchiveRotate": "soon"}, "binlogArchiveRotate")):
        try:
            render({"backup": {**good, **bad}})
            check(False, f"backup values {bad} were accepted")
        except Exception as e:  # the engine raises its own error types
            check(says in str(e), f"backup values {bad}: unclear error {e}")
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    to_gtid = {**VARIANTS["restored"], "restore": {"url": "s3://db-backups/prod", "toGtid": f"{uuid}:42"}}
    spec = by_kind(render(to_gtid), "StatefulSet")[0]["spec"]["template"]["spec"]
    init = {e["name"]: e.get("value") for e in spec["initContainers"][1]["env"]}
    check(init.get("MYSQL_STS_RESTORE_TO_GTID") == f"{uuid}:42" and "MYSQL_STS_RESTORE_TO_TIME" not in init,
          f"restore: to a GTID: {init}")
    for bad, says in (({"toGtid": "0-1-7", "toTime": "2026-12-07T10:15:00Z"}, "name two targets"),
                      ({"toGtid": f"{uuid}:1-42"}, "/restore/toGtid")):
        try:
            render({**VARIANTS["restored"], "restore": {"url": "s3://db-backups/prod", **bad}})
            check(False, f"restore values {bad} were accepted")
        except Exception as e:  # the engine raises its own error types
            check(says in str(e), f"restore values {bad}: unclear error {e}")
    print("ok   backups: the bucket's settings and keys in init, server and sidecar; bad ones refused at install;"
          " a restore to a time or a GTID, not both")


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def env_names(container):
    return {e["name"] for e in container.get("env", [])}


def main():
    version = k8s_version()
    print(f"Kubernetes schema version {version}")

    lint = helm.lint(str(CHART), {"renderOffline": True}, strict=True)
    check(not lint.get("errors") and not [m for m in lint.get("messages", []) if m["severity"] >= 2],
          f"helm lint --strict: {lint}")

    for name, values in VARIANTS.items():
        lint = helm.lint(str(CHART), {**values, "renderOffline": True}, strict=True)
        check(not lint.get("errors"), f"{name}: lint errors {lint.get('errors')}")
        objs = render(values)
        for o in objs:
            ident = f"{name}: {o['kind']}/{o['metadata']['name']}"
            if o["apiVersion"].startswith(CRD_GROUPS):
                continue
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                check(False, f"{ident}: {e.message} at {list(e.path)}")
            labels = o["metadata"].get("labels", {})
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                        "app.kubernetes.io/managed-by"):
                check(key in labels, f"{ident}: label {key}")
        sts = by_kind(objs, "StatefulSet")
        check(len(sts) == 1, f"{name}: one StatefulSet")
        sts = sts[0]
        spec = sts["spec"]
        pod = spec["template"]["spec"]
        containers = {c["name"]: c for c in pod["containers"]}
        inits = {c["name"]: c for c in pod["initContainers"]}
        image = containers["server"]["image"]
        check(spec["replicas"] == values.get("replicas", 3), f"{name}: replicas")
        check(spec["podManagementPolicy"] == "Parallel",
              f"{name}: every pod starts at once; the agent orders the clones itself")
        init_env = {e["name"]: e.get("value") for e in inits["init"]["env"]}
        semi = values.get("semiSync", {})
        for role, c in (("init", inits["init"]), ("sidecar", containers["agent"])):
            env = {e["name"]: e.get("value") for e in c["env"]}
            if semi.get("enabled"):
                check(env.get("MYSQL_STS_SEMI_SYNC") == "true"
                      and env.get("MYSQL_STS_SEMI_SYNC_WAIT_FOR") == str(semi["waitFor"])
                      and env.get("MYSQL_STS_SEMI_SYNC_TIMEOUT") == semi["timeout"],
                      f"{name}: {role} runs semi-synchronous replication as asked")
            else:
                check("MYSQL_STS_SEMI_SYNC" not in env, f"{name}: {role}: semi-sync off by default")
        check(init_env.get("MYSQL_STS_REPLICAS") == str(values.get("replicas", 3)),
              f"{name}: an empty master is told how many peers to hear from")
        agent_env = {e["name"]: e.get("value") for e in containers["agent"]["env"]}
        check(agent_env.get("MYSQL_STS_REPLICAS") == str(values.get("replicas", 3)),
              f"{name}: the master keeps binary logs for every replica")
        auto = values.get("agent", {}).get("autoReclone", {})
        check(agent_env.get("MYSQL_STS_AUTO_RECLONE") == ("true" if auto.get("enabled") else None)
              and agent_env.get("MYSQL_STS_AUTO_RECLONE_INTERVAL") == auto.get("interval"),
              f"{name}: --auto-reclone only when asked: {agent_env.get('MYSQL_STS_AUTO_RECLONE')}")
        check(any(m["name"] == "agent-bin" for m in containers["server"]["volumeMounts"]),
              f"{name}: the server's container has the agent, to run init first")
        flavor = values.get("flavor", "mysql")
        check(image.startswith(flavor + ":"), f"{name}: server image {image} is not {flavor}")
        check(containers["agent"]["image"] == image and inits["init"]["image"] == image,
              f"{name}: init and sidecar must run in the database image")
        check({e["name"]: e.get("value") for e in inits["init"]["env"]}["MYSQL_STS_FLAVOR"] == flavor,
              f"{name}: flavour passed to the agent")
        headless = [s for s in by_kind(objs, "Service") if s["spec"].get("clusterIP") == "None"]
        check(len(headless) == 1 and headless[0]["spec"]["publishNotReadyAddresses"] is True,
              f"{name}: headless Service publishing not-ready addresses")
        check(spec["serviceName"] == headless[0]["metadata"]["name"], f"{name}: serviceName is the headless Service")
        writes = [s for s in by_kind(objs, "Service") if s["metadata"]["name"].endswith("-write")]
        check(len(writes) == 1 and writes[0]["spec"]["selector"].get("statefulset.kubernetes.io/pod-name")
              == f"{sts['metadata']['name']}-0", f"{name}: the write Service selects pod 0 alone")
        check(pod["securityContext"]["runAsNonRoot"] is True, f"{name}: non-root pod")
        for c in list(containers.values()) + list(inits.values()):
            check(c["securityContext"]["allowPrivilegeEscalation"] is False, f"{name}: {c['name']} escalation")
        agent = containers["agent"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            check(probe in agent, f"{name}: sidecar {probe}")
        check(agent["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness on /readyz")
        check(agent["livenessProbe"]["httpGet"]["path"] == "/livez", f"{name}: liveness on /livez")
        tls = values.get("tls", {})
        tls_on = tls.get("enabled", True)
        env = {e["name"]: e.get("value") for e in agent["env"]}
        tls_secrets = [o for o in by_kind(objs, "Secret") if o["type"] == "kubernetes.io/tls"]
        if tls_on:
            check(env.get("MYSQL_STS_TLS_CA_FILE") == "/etc/mysql-sts/tls/ca.crt", f"{name}: sidecar trusts the CA")
            check(agent["readinessProbe"]["httpGet"]["scheme"] == "HTTPS", f"{name}: probes over HTTPS")
            tls_vol = [v for v in pod["volumes"] if v["name"] == "tls"][0]["secret"]["secretName"]
            server_mounts = {m["name"]: m["mountPath"] for m in containers["server"]["volumeMounts"]}
            check(server_mounts.get("tls") == "/etc/mysql-sts/tls",
                  f"{name}: the server reads the certificate the agents' config names")
            if tls.get("existingSecret"):
                check(not tls_secrets and tls_vol == "db-agent-tls", f"{name}: the existing TLS Secret is mounted")
            else:
                check(len(tls_secrets) == 1 and tls_secrets[0]["metadata"]["name"] == tls_vol,
                      f"{name}: a generated TLS Secret is mounted")
                check(set(tls_secrets[0]["data"]) == {"tls.crt", "tls.key", "ca.crt"}, f"{name}: TLS Secret keys")
                check_generated_cert(name, tls_secrets[0]["data"])
        else:
            check("MYSQL_STS_TLS_CA_FILE" not in env and not tls_secrets, f"{name}: TLS off")
            check(agent["readinessProbe"]["httpGet"]["scheme"] == "HTTP", f"{name}: probes over HTTP")
        secret_vol = [v for v in pod["volumes"] if v["name"] == "secrets"][0]["secret"]["secretName"]
        secrets = [o for o in by_kind(objs, "Secret") if o["type"] == "Opaque"]
        if "existingSecret" in values.get("auth", {}):
            check(not secrets, f"{name}: no Secret is created for an existing one")
            check(secret_vol == "db-credentials", f"{name}: pods mount the existing Secret")
        else:
            check(len(secrets) == 1 and secrets[0]["metadata"]["name"] == secret_vol, f"{name}: generated Secret")
            check(set(secrets[0]["data"]) == {"root-password", "replication-password", "clone-token"},
                  f"{name}: Secret keys")
        check(len(by_kind(objs, "PodDisruptionBudget")) == 1, f"{name}: PodDisruptionBudget")
        check_network_policy(name, values, objs, pod)
        monitors = by_kind(objs, "ServiceMonitor")
        check(len(monitors) == (1 if name == "monitored" else 0), f"{name}: ServiceMonitor")
        for m in monitors:
            check(m["spec"]["endpoints"][0]["port"] == "agent" and m["metadata"]["labels"]["release"] == "prom",
                  f"{name}: ServiceMonitor scrapes the agent port")
        check_alerting(name, objs, sts)
        print(f"ok   {name}: {len(objs)} objects valid for Kubernetes {version}")

    for bad in ({"flavor": "postgres"}, {"replicas": -1}, {"podManagementPolicy": "OrderedReady"},
                {"agent": {"donorTimeout": "soon"}}, {"unknownKey": 1}):
        try:
            render(bad)
            check(False, f"values {bad} were accepted")
        except Exception as e:  # the engine raises its own error types
            check("values" in str(e).lower() or "schema" in str(e).lower() or "flavor" in str(e),
                  f"values {bad}: unclear error {e}")
    print("ok   bad values are refused by values.schema.json")

    check_semi_sync()
    check_backup()
    check_gitops()
    check_same_as_compose()
    if failures:
        print(f"{len(failures)} chart check(s) failed")
        sys.exit(1)
    print("chart checks passed")


# What the README's Day two section lists.
ALERTS = {"MysqlStsPodNotReady", "MysqlStsErrantTransactions", "MysqlStsPurgedTransactions",
          "MysqlStsReplicationLag", "MysqlStsCloneFailures", "MysqlStsBinlogRetentionNearCap",
          "MysqlStsBinlogForcedPurge", "MysqlStsSemiSyncWaiting",
          "MysqlStsAsideCopiesKept", "MysqlStsCertificateExpiring", "MysqlStsBackupTooOld",
          "MysqlStsBackupFailed", "MysqlStsBinlogArchiveLagging"}


def promtool_check_rules(groups, what):
    """`promtool check rules` (Prometheus' own parser and checks) on `groups`."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump({"groups": groups}, f)
        f.flush()
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    check(r.returncode == 0, f"{what}: promtool check rules: {r.stdout}{r.stderr}")
    return r.stdout


def check_alerting(name, objs, sts):
    """The PrometheusRule passes promtool and selects this release's pods;
    every query of the Grafana dashboard parses as PromQL (promtool checks it
    as a recording rule)."""
    rules = by_kind(objs, "PrometheusRule")
    boards = [o for o in by_kind(objs, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]
    check(len(rules) == len(boards) == (1 if name == "alerting" else 0), f"{name}: PrometheusRule and dashboard")
    for r in rules:
        check(r["metadata"]["labels"].get("release") == "prom", f"{name}: PrometheusRule labels")
        groups = r["spec"]["groups"]
        alerts = [rule for g in groups for rule in g["rules"]]
        check({a["alert"] for a in alerts} == ALERTS, f"{name}: alerts {[a['alert'] for a in alerts]}")
        selector = f'namespace="prod",pod=~"{sts["metadata"]["name"]}-[0-9]+"'
        for a in alerts:
            check(selector in a["expr"] and "__SELECTOR__" not in a["expr"],
                  f"{name}: {a['alert']} selects the release's pods: {a['expr']}")
        out = promtool_check_rules(groups, f"{name}: PrometheusRule")
        check(f"{len(ALERTS)} rules found" in out, f"{name}: promtool saw every rule: {out}")
    for b in boards:
        check(b["metadata"]["labels"].get("grafana_dashboard") == "1", f"{name}: dashboard label for Grafana's sidecar")
        board = json.loads(b["data"]["mysql-sts.json"])
        exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        check(len(exprs) >= 10, f"{name}: dashboard queries: {len(exprs)}")
        queries = [{"record": f"dashboard:query_{i}", "expr": dashboard_query(e)} for i, e in enumerate(exprs)]
        out = promtool_check_rules([{"name": "dashboard", "rules": queries}], f"{name}: dashboard queries")
        check(f"{len(queries)} rules found" in out, f"{name}: promtool parsed every dashboard query: {out}")


def dashboard_query(expr):
    """A dashboard query as Grafana sends it, its variables filled in."""
    return (expr.replace("$__rate_interval", "1m").replace("$namespace", "prod").replace("$pod", ".+"))


def check_gitops():
    """Without a cluster to read back generated secrets from (helm template,
    Argo CD), a render that would generate them fails and says what to set;
    with existing Secrets it renders."""
    for values, says in (({}, "auth.existingSecret"),
                         ({"auth": {"existingSecret": "db-credentials"}}, "tls.existingSecret")):
        try:
            render(values, offline=False)
            check(False, f"values {values} rendered new secrets without a cluster")
        except Exception as e:  # the engine raises its own error types
            check("cannot read the cluster" in str(e) and says in str(e), f"values {values}: unclear error {e}")
    try:
        objs = render({"auth": {"existingSecret": "db-credentials"}, "tls": {"existingSecret": "db-agent-tls"}},
                      offline=False)
        check(not by_kind(objs, "Secret"), "GitOps render creates no Secret")
    except Exception as e:
        check(False, f"a render with existing Secrets failed: {e}")
    print("ok   without a cluster, generated secrets are refused and existing ones render")


def check_network_policy(name, values, objs, pod):
    """Off unless asked; then ingress only, each peer to exactly its ports,
    ports named as the pod names them."""
    policies = by_kind(objs, "NetworkPolicy")
    np = values.get("networkPolicy", {})
    if not np.get("enabled"):
        check(not policies, f"{name}: no NetworkPolicy unless enabled")
        return
    check(len(policies) == 1, f"{name}: one NetworkPolicy")
    spec = policies[0]["spec"]
    check(spec["policyTypes"] == ["Ingress"], f"{name}: NetworkPolicy restricts ingress only")
    pod_labels = by_kind(objs, "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]
    check(all(pod_labels.get(k) == v for k, v in spec["podSelector"]["matchLabels"].items()),
          f"{name}: NetworkPolicy selects the StatefulSet's pods")
    named = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
    rules = [(r["from"], sorted(p["port"] for p in r["ports"])) for r in spec["ingress"]]
    for _, ports in rules:
        check(set(ports) <= named, f"{name}: NetworkPolicy port names {ports} are the pod's {named}")
    own = [{"podSelector": {"matchLabels": spec["podSelector"]["matchLabels"]}}]
    check((own, ["agent", "mysql"]) in rules, f"{name}: the pods reach each other's server and agent")
    check((np["clients"], ["mysql"]) in rules, f"{name}: clients reach the server port only")
    check((np["metrics"], ["agent"]) in rules, f"{name}: monitoring reaches the agent port only")
    check(len(rules) == 3, f"{name}: no other ingress rule: {rules}")


def check_generated_cert(variant, data):
    """The generated certificate is signed by the generated CA and names
    every pod the way the agents address each other."""
    import base64
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        for key in ("tls.crt", "ca.crt"):
            Path(d, key).write_bytes(base64.b64decode(data[key]))
        verify = subprocess.run(["openssl", "verify", "-CAfile", f"{d}/ca.crt", f"{d}/tls.crt"],
                                capture_output=True, text=True)
        check(verify.returncode == 0, f"{variant}: certificate not signed by the CA: {verify.stdout}{verify.stderr}")
        san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", f"{d}/tls.crt"],
                             capture_output=True, text=True).stdout
        check("DNS:*.db-mysql-sts-h.prod.svc.cluster.local" in san, f"{variant}: certificate names {san!r}")


def check_same_as_compose():
    """The pod runs the agent exactly as the compose cluster does: the same
    commands, the same settings by the same names, each a real flag's env."""
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())["services"]
    pod = render({})
    pod = by_kind(pod, "StatefulSet")[0]["spec"]["template"]["spec"]
    chart = {"init": [c for c in pod["initContainers"] if c["name"] == "init"][0],
             "sidecar": [c for c in pod["containers"] if c["name"] == "agent"][0]}
    helptext = ""
    for cmd in ("init", "sidecar"):
        helptext += subprocess.run([str(AGENT), cmd, "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"env: ([A-Z_]+)=", helptext))
    known |= {"MYSQL_ROOT_PASSWORD", "MYSQL_STS_REPLICATION_PASSWORD", "MYSQL_STS_CLONE_TOKEN"}
    # Peers are named differently: a headless Service in Kubernetes, bare
    # names in compose; compose has no pod hostname to read.
    platform = {"MYSQL_STS_SERVICE", "POD_NAMESPACE", "MYSQL_STS_CLUSTER_DOMAIN", "MYSQL_STS_PEER_DOMAIN",
                "MYSQL_STS_HOSTNAME"}
    for role, service in (("init", "mysql-1-init"), ("sidecar", "mysql-1-agent")):
        c = compose[service]
        check(c["entrypoint"] == chart[role]["command"],
              f"{role}: compose runs {c['entrypoint']}, the chart {chart[role]['command']}")
        compose_env = set(c["environment"])
        chart_env = env_names(chart[role])
        for n in compose_env | chart_env:
            check(n in known, f"{role}: {n} is not an environment variable of mysql-sts {role}")
        shared = {n for n in compose_env - platform}
        check(shared <= chart_env, f"{role}: compose sets {sorted(shared - chart_env)} which the chart does not")
        for n in ("MYSQL_STS_ROOT_PASSWORD_FILE", "MYSQL_STS_REPLICATION_PASSWORD_FILE", "MYSQL_STS_CLONE_TOKEN_FILE"):
            check(n in compose_env and n in chart_env, f"{role}: both read {n}")
    # One datadir, in the volume, for init, the sidecar and the server alike.
    values = lambda c: {e["name"]: e.get("value") for e in c.get("env", [])}
    datadir = values(chart["init"]).get("MYSQL_STS_DATADIR")
    check(datadir and values(chart["sidecar"]).get("MYSQL_STS_DATADIR") == datadir,
          "init and the sidecar use one datadir")
    root = values(chart["init"]).get("MYSQL_STS_VOLUME_ROOT")
    check(root and datadir.startswith(root + "/"), f"the datadir {datadir} is a directory in the volume {root}")
    server = [c for c in pod["containers"] if c["name"] == "server"][0]
    check(server.get("args") == [f"--datadir={datadir}"], f"the chart's server runs on {datadir}")
    mounts = {(m["mountPath"], m.get("subPath")) for c in pod["containers"] + pod["initContainers"]
              for m in c.get("volumeMounts", []) if m["name"] == "data"}
    check(mounts == {(root, None)}, f"every container mounts the whole volume at {root}: {mounts}")
    check(compose["mysql-1-server"].get("command") == server.get("args"), "compose's server runs on the same datadir")
    # Every start of the server goes through init (a re-clone the sidecar
    # asked for is made there), with init's settings, then the entrypoint.
    check(server.get("command") == ["/opt/mysql-sts/mysql-sts", "init", "--", "docker-entrypoint.sh"]
          and compose["mysql-1-server"].get("entrypoint") == server["command"],
          f"the server starts through init: chart {server.get('command')}, "
          f"compose {compose['mysql-1-server'].get('entrypoint')}")
    check(env_names(chart["init"]) <= env_names(server),
          f"the server's init has init's settings: {sorted(env_names(chart['init']) - env_names(server))}")
    check(set(compose["mysql-1-init"]["environment"]) <= set(compose["mysql-1-server"]["environment"]),
          "compose's server runs init with init's settings")
    for role, service in (("init", "mysql-1-init"), ("sidecar", "mysql-1-agent")):
        env = compose[service]["environment"]
        check(env.get("MYSQL_STS_DATADIR") == datadir, f"compose's {role} uses the chart's datadir")
    check(compose["mysql-1-init"]["environment"].get("MYSQL_STS_VOLUME_ROOT") == root,
          "compose's init knows the volume root")
    print("ok   the chart's pod runs the agent as the compose cluster does")


if __name__ == "__main__":
    main()
