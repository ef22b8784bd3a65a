#!/usr/bin/env python3
"""End-to-end tests of the chart on the real one-node cluster of scripts/kube.

For each engine, the chart is installed by real Helm and taken through the
lifecycle a user's cluster lives: scale out and in, pods deleted, the server
killed through the runtime, the master's volume lost, a rolling upgrade, the
passwords rotated and the certificates renewed in place, a semi-sync rebuild with no
replica to acknowledge, the master lost while a replica held acknowledged rows only
in its relay log, the master lost while a replica's data was set aside for a
re-clone, a backup and a new release restored from it to a point in time, the node
rebooted, scale to zero, a drain against the PodDisruptionBudget. Every release backs up
to an S3-compatible store the suite starts on the host (SeaweedFS) and archives its
binary logs there all along.
The engines run side by side, each in a namespace of its own; the node's reboot and
drain happen once, to every engine's release at the same time. A writer
pod inserts rows through the chart's write Service and logs each one the server
acknowledged; after every step each acknowledged row must be on every pod and
CHECKSUM TABLE must agree. Bad input is tried once on the cluster too.

    tests/kube/e2e.py [--engines mariadb,mariadb11,mysql] [--report docs/KUBERNETES.md]

Prints a line per step and `N passed, N failed` last; exits 1 when a step failed.
Needs the cluster up (scripts/kube up) and the images loaded (scripts/kube images).
"""
import argparse
import base64
import calendar
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = "mysql-sts"  # the StatefulSet, its pods and Services are named after it
CHART = os.path.join(ROOT, "charts", "mysql-sts")
LOGS = os.environ.get("KUBE_E2E_LOGS", "/var/log/mysql-sts-kube/e2e")
KUBE = os.path.join(ROOT, "scripts", "kube")
NODE_IP = "10.78.0.1"  # the node's address (scripts/kube), which the pods reach the host at
WEED = os.environ.get("MYSQL_STS_TEST_WEED", "/var/cache/mysql-sts-test/s3/bin/weed")
S3_KEYS = {"access-key": "AKIAMYSQLSTSE2E", "secret-key": "e2e-S3-Secret-4c1d"}
BUCKET = "backups"


class Engine:
    def __init__(self, key, label, flavor, repository, tag, client):
        self.key, self.label, self.flavor = key, label, flavor
        self.repository, self.tag, self.client = repository, tag, client

    @property
    def image(self):
        return f"{self.repository}:{self.tag}"


ENGINES = {
    "mariadb": Engine("mariadb", "MariaDB 10.11", "mariadb", "mysql-sts/mariadb", "10.11", "mariadb"),
    "mariadb11": Engine("mariadb11", "MariaDB 11.8", "mariadb", "mysql-sts/mariadb", "11.8", "mariadb"),
    "mysql": Engine("mysql", "MySQL 9.7", "mysql", "mysql-sts/mysql", "9.7", "mysql"),
}


class Store:
    """SeaweedFS on the host, an S3-compatible store the releases back up to
    through the node's address; built from its Go module by install-test-deps."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mysql-sts-e2e-s3-")
        ports = []
        while len(ports) < 4:
            with socket.socket() as sock:
                sock.bind(("0.0.0.0", 0))
                p = sock.getsockname()[1]
            if not 10000 <= p < 55000 or p in ports:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("0.0.0.0", p + 10000))
                except OSError:
                    continue
            ports.append(p)
        self.port, filer, self.master, volume = ports
        with open(os.path.join(self.dir, "s3.json"), "w") as f:
            json.dump({"identities": [{"name": "e2e", "credentials": [
                {"accessKey": S3_KEYS["access-key"], "secretKey": S3_KEYS["secret-key"]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
        os.makedirs(os.path.join(self.dir, "data"))
        self.log = open(os.path.join(self.dir, "weed.log"), "w")
        self.proc = subprocess.Popen(
            [WEED, "server", f"-dir={self.dir}/data", "-s3", "-ip=127.0.0.1", "-ip.bind=0.0.0.0", "-volume.max=0",
             "-master.volumeSizeLimitMB=256", f"-s3.port={self.port}", f"-filer.port={filer}",
             f"-master.port={self.master}", f"-volume.port={volume}", f"-s3.config={self.dir}/s3.json"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.endpoint = f"http://{NODE_IP}:{self.port}"

        def bucket():
            out = subprocess.run([WEED, "shell", f"-master=127.0.0.1:{self.master}"], capture_output=True,
                                 text=True, input=f"s3.bucket.create -name {BUCKET}\n", timeout=60)
            return "created bucket" in out.stdout + out.stderr or "already exist" in out.stdout + out.stderr
        wait("the S3 store's bucket", bucket, 120)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


STORE = None  # the Store, once main() started it


class Failed(Exception):
    pass


def run(args, check=True, timeout=300, input=None):
    """Runs a command; returns its stdout. A failure names the command and what it said."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise Failed(f"timed out after {timeout} s: {shlex.join(args)}")
    if check and p.returncode != 0:
        raise Failed(f"{shlex.join(args)} exited {p.returncode}: {(p.stderr or p.stdout).strip()[-800:]}")
    return p.stdout if check else p


class Api:
    """GETs from the API server as `kubectl get -o json` would, over one kept connection
    per thread: a kubectl process for each poll of each release took a tenth of a core."""

    def __init__(self):
        self.local = threading.local()
        self.ctx = None

    def _connect(self):
        if self.ctx is None:
            with open(os.environ["KUBECONFIG"]) as f:
                cfg = f.read()

            def field(key):
                return re.search(rf"^\s*{key}:\s*(\S+)\s*$", cfg, re.M).group(1)
            server = urllib.parse.urlsplit(field("server"))
            self.host, self.port = server.hostname, server.port or 443
            ctx = ssl.create_default_context(cafile=field("certificate-authority"))
            ctx.load_cert_chain(field("client-certificate"), field("client-key"))
            self.ctx = ctx
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)

    def get(self, path):
        """The object at `path`, decoded; Failed when the server refuses (404 among them)."""
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None) or self._connect()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                self.local.conn = conn
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise Failed(f"GET {path}: {e}")
        if resp.status != 200:
            raise Failed(f"GET {path}: {resp.status} {body[:300]!r}")
        return json.loads(body)


API = Api()


def wait(what, probe, timeout):
    """Polls probe until it returns something true; returns it."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            got = probe()
            if got:
                return got
        except Failed as e:
            last = e
        time.sleep(1)
    raise Failed(f"{what}: not after {timeout} s" + (f" (last: {last})" if last else ""))


def kube_env():
    """The PATH and KUBECONFIG that scripts/kube env prints."""
    out = run([KUBE, "env"])
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        os.environ[key] = value.replace("$PATH", os.environ["PATH"])


def acks(log):
    """The ids a writer's log says the server acknowledged."""
    return {int(line.split()[1]) for line in log.splitlines() if line.startswith("ack ")}


def agent_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        for line in f:
            if line.startswith("version = "):
                return line.split('"')[1]
    raise Failed("no version in Cargo.toml")


class Release:
    """The chart installed in a namespace of its own, for one engine."""

    def __init__(self, engine, namespace):
        self.engine, self.ns = engine, namespace
        self.acked = set()  # every id the server acknowledged, over all steps
        self.writer_seq = 0
        self.backups = True  # back up to the suite's store

    # ------------------------------------------------------------ plumbing
    def kubectl(self, *args, **kw):
        return run(["kubectl", "-n", self.ns, *args], **kw)

    def values(self):
        e = self.engine
        sets = {
            "flavor": e.flavor,
            f"image.{e.flavor}.repository": e.repository,
            f"image.{e.flavor}.tag": e.tag,
            "image.pullPolicy": "Never",
            "agent.image.repository": "mysql-sts/agent",
            "agent.image.tag": agent_version(),
            "agent.image.pullPolicy": "Never",
            "replicas": "3",
            "semiSync.enabled": "true",
            "persistence.size": "2Gi",
            "resources.requests.cpu": "100m",
            "resources.requests.memory": "256Mi",
        }
        if self.backups and STORE:
            # Backups to the suite's store, and the binary log archive, all along.
            sets.update({
                "backup.enabled": "true",
                "backup.url": f"s3://{BUCKET}/{self.ns}",
                "backup.endpoint": STORE.endpoint,
                "backup.existingSecret": "s3-keys",
                "backup.binlogArchiveRotate": "10s",
            })
        args = []
        for k, v in sets.items():
            args += ["--set-string" if k.endswith("tag") else "--set", f"{k}={v}"]
        return args

    def helm(self, *args, **kw):
        return run(["helm", "--namespace", self.ns, *args], **kw)

    def pods(self):
        selector = urllib.parse.quote(f"app.kubernetes.io/instance={RELEASE}")
        items = API.get(f"/api/v1/namespaces/{self.ns}/pods?labelSelector={selector}")["items"]
        return {p["metadata"]["name"]: p for p in items}

    @staticmethod
    def ready(pod):
        return pod["metadata"].get("deletionTimestamp") is None and any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))

    def pod(self, n):
        return f"{RELEASE}-{n}"

    def wait_ready(self, n, timeout=600):
        """Exactly pods 0..n-1, every one Ready."""
        want = {self.pod(i) for i in range(n)}

        def probe():
            pods = self.pods()
            return set(pods) == want and all(self.ready(p) for p in pods.values())
        wait(f"{n} pods Ready", probe, timeout)

    def wait_restarted(self, n, since, timeout=600):
        """Pods 0..n-1 Ready again, every container of each started after `since` (a time)."""
        def started(c):
            at = (c.get("state", {}).get("running") or {}).get("startedAt")
            return at and calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ")) >= int(since)

        def probe():
            pods = self.pods()
            return len(pods) == n and all(
                self.ready(p) and all(started(c) for c in p["status"].get("containerStatuses", []))
                for p in pods.values())
        wait(f"{n} pods restarted and Ready", probe, timeout)

    def sql(self, pod, query, container="server"):
        """A query as root over the pod's own socket; rows of tab-separated fields."""
        script = (f'{self.engine.client} -uroot -p"$(cat /etc/mysql-sts/secrets/root-password)" '
                  f'-N -B -e "$1"')
        out = self.kubectl("exec", pod, "-c", container, "--", "sh", "-c", script, "sh", query, timeout=60)
        return [line.split("\t") for line in out.splitlines() if line]

    def init_log(self, n):
        return self.kubectl("logs", self.pod(n), "-c", "init", check=False).stdout

    def dump(self, step):
        """What a person would look at when a step fails, kept in LOGS."""
        os.makedirs(LOGS, exist_ok=True)
        path = os.path.join(LOGS, f"{self.engine.key}-{step}.txt")
        with open(path, "w") as f:
            for args in (["get", "pods,pvc,sts,svc,events", "-o", "wide"], ["describe", "pods"]):
                f.write(f"$ kubectl {' '.join(args)}\n{self.kubectl(*args, check=False).stdout}\n")
            for name in self.pods():
                for c in ("init", "server", "agent"):
                    for previous in ([], ["--previous"]):
                        args = ["logs", name, "-c", c, "--tail=400", *previous]
                        f.write(f"$ kubectl {' '.join(args)}\n{self.kubectl(*args, check=False).stdout}\n")
        return path

    def digest(self):
        """A few lines on why the release is not what a step wanted, for the
        suite's own output (CI keeps that, not LOGS): each pod's phase and
        containers, the node's pressures, the namespace's warnings, and the
        last lines each container said."""
        lines = []
        try:
            pods = self.pods()
        except Failed as e:
            return f"  the pods could not be listed: {e}"
        for name, p in sorted(pods.items()):
            st = p.get("status", {})
            parts = []
            for c in st.get("initContainerStatuses", []) + st.get("containerStatuses", []):
                state = c.get("state", {})
                kind, info = next(iter(state.items()), ("unknown", {}))
                why = info.get("reason") or ""
                if kind == "terminated":
                    why += f" exit {info.get('exitCode')}"
                msg = (info.get("message") or "").strip().replace("\n", " ")[:160]
                parts.append(f"{c['name']} {kind}{' ' + why.strip() if why.strip() else ''}"
                             f"{' ready' if c.get('ready') else ''} restarts {c.get('restartCount', 0)}"
                             f"{': ' + msg if msg else ''}")
            lines.append(f"  {name} {st.get('phase')} on {p['spec'].get('nodeName') or 'no node'}: "
                         + "; ".join(parts))
        node = run(["kubectl", "get", "nodes", "-o", "json"], check=False).stdout
        try:
            for n in json.loads(node)["items"]:
                bad = [f"{c['type']}={c['status']} ({c.get('message', '')})"
                       for c in n["status"].get("conditions", [])
                       if (c["type"] == "Ready") != (c["status"] == "True")]
                taints = [t["key"] for t in n["spec"].get("taints", [])]
                if bad or taints:
                    lines.append(f"  node {n['metadata']['name']}: {'; '.join(bad)} taints {taints}")
        except (ValueError, KeyError):
            lines.append("  the node could not be read")
        events = self.kubectl("get", "events", "--field-selector", "type=Warning",
                              "--sort-by=.lastTimestamp", "-o",
                              "custom-columns=OBJ:.involvedObject.name,WHY:.reason,MSG:.message",
                              "--no-headers", check=False).stdout.splitlines()
        lines += [f"  warning: {e[:240]}" for e in events[-8:]]
        for name in sorted(pods):
            for c in ("init", "server", "agent"):
                said = self.kubectl("logs", name, "-c", c, "--tail=4", check=False).stdout.splitlines()
                lines += [f"  {name}/{c}: {line[:240]}" for line in said]
        return "\n".join(lines)

    def client_pod(self, name, script, labels=None, shell="sh"):
        """Applies a pod that runs `script` with the engine's client, as root through MYSQL_PWD."""
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999},
                "containers": [{
                    "name": "client", "image": self.engine.image, "imagePullPolicy": "Never",
                    "command": [shell, "-c", script],
                    "env": [{"name": "MYSQL_PWD", "valueFrom": {"secretKeyRef": {"name": RELEASE, "key": "root-password"}}}],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                }],
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def phase(self, name):
        return API.get(f"/api/v1/namespaces/{self.ns}/pods/{name}")["status"].get("phase")

    def wait_finished(self, name, timeout):
        """Waits until pod `name` has ended; returns its phase."""
        def ended():
            phase = self.phase(name)
            return phase if phase in ("Succeeded", "Failed") else None
        return wait(f"pod {name} finished", ended, timeout)

    # ------------------------------------------------------------ the writer
    def start_writer(self, step):
        """A pod that inserts rows through the write Service and logs each acknowledged id.
        One session inserts a row at a time until a statement fails, then another: a
        client process and a login per row took half a core of the node's two."""
        self.writer_seq += 1
        name = f"writer-{self.writer_seq}"
        base = self.writer_seq * 1_000_000
        script = f"""
i={base}
trap '' PIPE
mkfifo /tmp/tick && exec 9<>/tmp/tick
pause() {{ read -t "$1" -u 9 || :; }}  # nothing is written to the fifo: a wait with no process
while [ ! -e /tmp/stop ]; do
  coproc DB {{ {self.engine.client} -h {RELEASE}-write -uroot --connect-timeout=3 -n -N -B 2>/tmp/err; }}
  pid=$DB_PID in=${{DB[1]}} out=${{DB[0]}}
  # The client runs the SELECT, and prints the id, only once the INSERT before it
  # returned OK; it stops at the first error.
  while [ ! -e /tmp/stop ] \\
      && echo "INSERT INTO e2e.acks (id, step) VALUES ($i, '{step}'); SELECT 'ack $i';" >&"$in" \\
      && read -r line <&"$out"; do
    echo "$line"
    i=$((i + 1))
    pause 0.05
  done
  exec {{in}}>&- 2>/dev/null
  wait "$pid" 2>/dev/null
  [ -e /tmp/stop ] && break
  # The failed row may have committed unanswered: its id is not used again.
  echo "err $i $(grep -m1 ERROR /tmp/err | cut -c1-160)"
  i=$((i + 1))
  pause 0.5
done
echo stopped
"""
        self.client_pod(name, script, {"mysql-sts.local/e2e": "writer"}, shell="bash")
        wait(f"writer {name} running", lambda: self.phase(name) != "Pending", 120)
        return name

    def stop_writer(self, name):
        """Stops the writer and returns the ids the server acknowledged to it."""
        self.kubectl("exec", name, "--", "touch", "/tmp/stop", check=False, timeout=30)
        try:
            self.wait_finished(name, 60)
        except Failed:
            pass
        acked = acks(self.kubectl("logs", name))
        self.kubectl("delete", "pod", name, "--wait=false", check=False)
        self.acked |= acked
        return acked

    # ------------------------------------------------------------ the check
    def check(self, n, timeout=240):
        """Every acknowledged row on each of pods 0..n-1, and CHECKSUM TABLE equal on all.
        Returns the number of acknowledged rows missing from any pod."""
        pods = [self.pod(i) for i in range(n)]
        lost = None
        end = time.time() + timeout
        while True:
            ids, sums = {}, {}
            try:
                for p in pods:
                    ids[p] = {int(r[0]) for r in self.sql(p, "SELECT id FROM e2e.acks")}
                    sums[p] = self.sql(p, "CHECKSUM TABLE e2e.acks")[0][1]
            except Failed:
                ids = None
            if ids is not None:
                lost = len(set().union(*(self.acked - got for got in ids.values())))
                if lost == 0 and len(set(sums.values())) == 1:
                    return 0
            if time.time() > end:
                if ids is None:
                    raise Failed("the pods could not be queried")
                if lost:
                    missing = {p: sorted(self.acked - got)[:10] for p, got in ids.items() if self.acked - got}
                    # The pods' logs as they are now, before the step goes on.
                    path = self.dump(f"rows-missing-{int(time.time())}")
                    print(f"{self.engine.label}: acknowledged rows missing, by pod: {missing} (see {path})",
                          flush=True)
                    return lost
                raise Failed(f"CHECKSUM TABLE differs between pods: {sums}")
            time.sleep(2)


def outcome_of(fn, *args):
    """fn(*args), or the Failed it raised; another exception is a failure of the
    step too, named by its type (a bug in a step must not pass for a result)."""
    try:
        return fn(*args)
    except Failed as e:
        return e
    except Exception as e:  # noqa: BLE001
        return Failed(f"{type(e).__name__}: {e}")


class Suite:
    def __init__(self, report, engines):
        self.rows = []  # (engine label, step, replication, ok, seconds, acked, lost, note)
        self.report = report
        self.order = [e.label for e in engines] + ["any"]
        # The commit the run began at (the tree may move on while it runs).
        self.commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()

    def record(self, release, name, t0, before, outcome, durable=True):
        """Records a step's row from `outcome`, (note, lost) or the Failed it raised.
        A step that is not `durable` shows what an acknowledged write is worth
        without semi-sync: its losses are counted, not failed."""
        label = release.engine.label if release else "any"
        digest = ""
        if isinstance(outcome, Failed):
            ok, note, lost = False, str(outcome), None
            if release:
                note += f" (see {release.dump(name)})"
                digest = release.digest()
        else:
            note, lost = outcome
            ok = lost == 0 or lost is None or not durable
            if lost:
                note = f"{lost} acknowledged rows missing; {note}"
            if not ok:
                note += f" (see {release.dump(name)})"
                digest = release.digest()
        secs = time.time() - t0
        acked = (len(release.acked) - before) if release else 0
        self.rows.append((label, name, "semi-sync" if durable else "async", ok, secs, acked, lost, note))
        print(f"{'ok' if ok else 'FAILED':6} {label:13} {name:36} {secs:6.1f} s  acked {acked:5}  "
              f"lost {lost if lost is not None else '-'}  {note}", flush=True)
        if digest:
            print(digest, flush=True)
        return ok

    def step(self, release, name, fn, durable=True):
        """Runs one step of one release; returns whether it passed."""
        before, t0 = len(release.acked) if release else 0, time.time()
        return self.record(release, name, t0, before, outcome_of(fn), durable)

    def node_step(self, name, step, releases):
        """A step that happens to the node once, for every release at the same time:
        step.before(release) in each, step.action() once, step.after(release, what
        before returned) in each. Returns the releases it failed in."""
        t0 = time.time()
        acked = {r: len(r.acked) for r in releases}
        state, failed = {}, {}
        for r in releases:
            state[r] = outcome_of(step.before, r)
            if isinstance(state[r], Failed):
                failed[r] = state[r]
        done = outcome_of(step.action)
        if isinstance(done, Failed):
            failed.update({r: done for r in releases if r not in failed})
        outcomes = dict(failed)

        def after(r):
            outcomes[r] = outcome_of(step.after, r, state[r])
        side_by_side(after, [r for r in releases if r not in failed])
        return [r for r in releases if not self.record(r, name, t0, acked[r], outcomes[r])]

    def write_report(self, engines, started):
        commit = self.commit
        versions = run(["kubectl", "version", "-o", "json"], check=False).stdout
        try:
            server = json.loads(versions)["serverVersion"]["gitVersion"]
        except (ValueError, KeyError):
            server = "?"
        helm = run(["helm", "version", "--short"], check=False).stdout.strip()
        lines = [
            "# mysql-sts on a real Kubernetes",
            "",
            "Generated by `tests/kube/e2e.py` (run by `scripts/test`) on the one-node cluster",
            "of `scripts/kube`, every component built from its upstream module "
            "(`kube/build/*/go.mod`).",
            "",
            f"- commit `{commit}`, run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
            f"{(time.time() - started) / 60:.1f} min",
            f"- Kubernetes {server} (kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy), "
            f"etcd 3.7.3, containerd 2.4.2, runc 1.5.3, CNI plugins 1.10.0 (bridge, host-local), "
            f"CoreDNS 1.15.0, Helm {helm}",
            "- node: cgroup v1 (cgroupfs driver, `failCgroupV1: false`), overlayfs snapshotter, "
            "local persistent volumes; the kubelet syncs each pod every 10 s (`syncFrequency`, a "
            "minute by default), so a changed Secret reaches the pods in about 10-20 s, where a "
            "default kubelet takes up to 60-90 s",
            "- engines: " + ", ".join(f"{e.label} (`{e.image}`)" for e in engines),
            "",
            "A writer pod inserts rows through the chart's write Service while each step runs and logs every",
            "insert the server acknowledged; after the step every acknowledged row must be on every pod and",
            "`CHECKSUM TABLE` must agree. Semi-synchronous replication is on unless the step says otherwise.",
            "",
            "The engines run side by side, each release in a namespace of its own, so a step's time includes",
            "the waits for the two cores the node shares. The node reboot and the drain happen once, to every",
            "release at the same time: their rows share one time.",
            "",
            "The `async` rows show what semi-sync buys: the same loss of mysql-0 and its volume with",
            "semi-sync off, where the rows the old master acknowledged but had not yet sent are lost,",
            "counted, and not failed.",
            "",
            "| engine | step | replication | result | time (s) | rows acknowledged | rows lost | what was seen |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | --- |",
        ]
        for label, name, setting, ok, secs, acked, lost, note in sorted(
                self.rows, key=lambda row: self.order.index(row[0])):
            note = note.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {label} | {name} | {setting} | {'ok' if ok else '**failed**'} | {secs:.0f} | "
                         f"{acked} | {lost if lost is not None else '-'} | {note} |")
        with open(self.report, "w") as f:
            f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------- the steps
def s3_keys(r):
    """The Secret with the store's keys, in the release's namespace."""
    r.kubectl("create", "secret", "generic", "s3-keys",
              *[f"--from-literal={k}={v}" for k, v in S3_KEYS.items()])


def install(r):
    remove_namespace(r.ns)
    run(["kubectl", "create", "namespace", r.ns])
    s3_keys(r)
    r.helm("install", RELEASE, CHART, *r.values(), "--wait", "--timeout", "10m", timeout=700)
    r.wait_ready(3)
    # A new install starts every container once: a restart is a crash the kubelet hid.
    restarts = {n: [c["name"] for c in p["status"]["containerStatuses"] if c["restartCount"]]
                for n, p in r.pods().items()}
    if any(restarts.values()):
        raise Failed(f"containers restarted during the install: {restarts}")
    r.sql(r.pod(0), "CREATE DATABASE IF NOT EXISTS e2e; CREATE TABLE IF NOT EXISTS e2e.acks "
                    "(id BIGINT PRIMARY KEY, step VARCHAR(40) NOT NULL, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))")
    # A row through the write Service, read back through the read Service, from a pod.
    c = r.engine.client
    script = (f'{c} -h {RELEASE}-write -uroot -e "CREATE TABLE IF NOT EXISTS e2e.hello (said TEXT); '
              f"INSERT INTO e2e.hello VALUES ('hello through the write Service')\" && "
              f'for i in 1 2 3 4 5 6 7 8 9 10; do '
              f'{c} -h {RELEASE}-read -uroot -N -B -e "SELECT @@hostname, said FROM e2e.hello" | grep . && exit 0; '
              f'sleep 1; done; exit 1')
    r.client_pod("hello", script)
    phase = r.wait_finished("hello", 120)
    said = r.kubectl("logs", "hello").strip()
    r.kubectl("delete", "pod", "hello", "--wait=false")
    if phase != "Succeeded" or "hello through the write Service" not in said:
        raise Failed(f"the row written through the write Service was not read back: {said!r}")
    w = r.start_writer("install")
    time.sleep(5)
    got = r.stop_writer(w)
    if not got:
        raise Failed("the writer got no acknowledgement through the write Service")
    return f"3 pods Ready; read back through the read Service on {said.split()[0]}", r.check(3)


def scale(r, n):
    """Scales the way the chart's user does: helm upgrade with the new count. (With
    Helm 4's server-side apply, a `kubectl scale` makes the next upgrade fail on
    the field it took over, and the values would put the old count back anyway.)"""
    r.helm("upgrade", RELEASE, CHART, "--reuse-values", "--set", f"replicas={n}", "--wait",
           "--timeout", "10m", timeout=700)
    r.wait_ready(n)


def scale_out(r):
    w = r.start_writer("scale-out")
    scale(r, 5)
    donors = []
    for n in (3, 4):
        log = r.init_log(n)
        want = f"{RELEASE}-{n - 1}"
        complete = [json.loads(line) for line in log.splitlines() if '"clone complete"' in line]
        if not complete or want not in json.dumps(complete[-1]):
            raise Failed(f"pod {n} did not clone from {want}: {log[-600:]}")
        donors.append(f"{n}<-{n - 1}")
    scale(r, 3)
    claims = json.loads(r.kubectl("get", "pvc", "-o", "json"))["items"]
    bound = {c["metadata"]["name"] for c in claims if c["status"].get("phase") == "Bound"}
    for n in (3, 4):
        if f"data-{RELEASE}-{n}" not in bound:
            raise Failed(f"the volume of pod {n} was not kept after scaling in: {sorted(bound)}")
    scale(r, 5)
    for n in (3, 4):
        log = r.init_log(n)
        if '"clone complete"' in log or "datadir holds data" not in log:
            raise Failed(f"returning pod {n} did not reuse its data: {log[-600:]}")
    r.stop_writer(w)
    return f"clones {', '.join(donors)}; volumes kept at 3; pods 3, 4 came back on their data", r.check(5)


def delete_pods(r):
    w = r.start_writer("delete-pods")
    for n in (2, 0):
        uid = r.pods()[r.pod(n)]["metadata"]["uid"]
        r.kubectl("delete", "pod", r.pod(n), "--wait=true", timeout=120)
        wait(f"pod {n} replaced", lambda: r.pods().get(r.pod(n), {}).get("metadata", {}).get("uid") not in (None, uid), 120)
        r.wait_ready(5)
        log = r.init_log(n)
        if '"clone complete"' in log:
            raise Failed(f"pod {n} cloned again after a plain delete: {log[-600:]}")
    r.stop_writer(w)
    return "pods 2 and 0 back on their data, no clone", r.check(5)


def kill_server(r):
    w = r.start_writer("kill-server")
    time.sleep(3)
    pod = r.pods()[r.pod(0)]
    server = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "server")
    restarts, cid = server["restartCount"], server["containerID"].split("//", 1)[1]
    run([KUBE, "ctr", "tasks", "kill", "--signal", "SIGKILL", cid])

    def restarted():
        s = next(c for c in r.pods()[r.pod(0)]["status"]["containerStatuses"] if c["name"] == "server")
        return s["restartCount"] > restarts
    wait("the kubelet restarting the server", restarted, 120)
    r.wait_ready(5)
    time.sleep(3)
    r.stop_writer(w)
    return "the kubelet restarted mysql-0's server (SIGKILL through containerd); replicas resumed", r.check(5)


def lose_master_volume(r, label="master-volume-lost", replicas=5, check_timeout=240, durable=True):
    w = r.start_writer(label)
    time.sleep(3)
    old = r.pods()[r.pod(0)]["metadata"]["uid"]
    before = acks(r.kubectl("logs", w))
    r.kubectl("delete", "pvc", f"data-{RELEASE}-0", "--wait=false")
    r.kubectl("delete", "pod", r.pod(0), "--wait=false")

    def back():
        p = r.pods().get(r.pod(0))
        return p and p["metadata"]["uid"] != old and r.ready(p)
    wait("mysql-0 back with a new volume", back, 600)
    # The moment it is Ready again, the new master holds every row acknowledged
    # before the old one was lost: it never serves empty, nor behind.
    held = {int(row[0]) for row in r.sql(r.pod(0), "SELECT id FROM e2e.acks")}
    behind = len((r.acked | before) - held)
    if durable and behind:
        raise Failed(f"mysql-0 came back Ready without {behind} rows acknowledged before it was lost")
    r.wait_ready(replicas)
    time.sleep(3)
    r.stop_writer(w)
    run([KUBE, "volumes"])
    log = r.init_log(0)
    reseed = [json.loads(line) for line in log.splitlines() if "re-seeding the master" in line]
    if not reseed:
        raise Failed(f"mysql-0 did not say it re-seeded from a replica: {log[-600:]}")
    donor = reseed[-1].get("fields", reseed[-1]).get("donor", "?")
    state = "with every row acknowledged before" if not behind else f"without {behind} rows acknowledged before"
    return f"mysql-0 re-seeded from {donor}, Ready {state}", r.check(replicas, check_timeout)


def rolling_upgrade(r):
    w = r.start_writer("rolling-upgrade")
    before = {n: p["metadata"]["uid"] for n, p in r.pods().items()}
    order = []
    proc = subprocess.Popen(["helm", "--namespace", r.ns, "upgrade", RELEASE, CHART, "--reuse-values",
                             "--set-string", f"podAnnotations.e2e-roll={int(time.time())}",
                             "--wait", "--timeout", "15m"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None:
        for n, p in r.pods().items():
            if p["metadata"]["uid"] != before.get(n) and n not in order:
                order.append(n)
        time.sleep(0.5)
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise Failed(f"helm upgrade failed: {out[-600:]}")
    r.wait_ready(5)
    for n, p in r.pods().items():
        if p["metadata"]["uid"] != before.get(n) and n not in order:
            order.append(n)
    r.stop_writer(w)
    ordinals = [int(n.rsplit("-", 1)[1]) for n in order]
    if ordinals != sorted(range(5), reverse=True):
        raise Failed(f"pods were replaced in the order {ordinals}, not from the highest ordinal down")
    return f"replaced in the order {ordinals}", r.check(5)


def rotate_passwords(r):
    """The passwords and the clone token changed under the running release: root's and
    the token by `helm upgrade`, the replication password by editing the Secret (as an
    `existingSecret` is edited). No pod restarts: every server takes the new passwords
    and refuses the old ones, the values replaced stay as <key>-previous, and replication
    logs in with the new password once the master's pod is replaced."""
    def secret():
        data = json.loads(r.kubectl("get", "secret", RELEASE, "-o", "json"))["data"]
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def containers():
        return {n: (p["metadata"]["uid"], sum(c["restartCount"] for c in p["status"]["containerStatuses"]))
                for n, p in r.pods().items()}
    old, before = secret(), containers()
    n = len(before)
    seq = int(time.time())
    new = {"root-password": f"root-rotated-{seq}", "clone-token": f"token-rotated-{seq}",
           "replication-password": f"repl-rotated-{seq}"}
    t0 = time.time()
    r.helm("upgrade", RELEASE, CHART, "--reuse-values", "--set", f"auth.rootPassword={new['root-password']}",
           "--set", f"auth.cloneToken={new['clone-token']}", timeout=300)
    patch = {"data": {k: base64.b64encode(v.encode()).decode() for k, v in (
        ("replication-password", new["replication-password"]),
        ("replication-password-previous", old["replication-password"]))}}
    r.kubectl("patch", "secret", RELEASE, "--type", "merge", "-p", json.dumps(patch))
    now = secret()
    for key in new:
        if now.get(key) != new[key] or now.get(f"{key}-previous") != old[key]:
            raise Failed(f"the Secret's {key} is not the new value with the old one as {key}-previous")

    def logs_in(pod, user, password):
        p = r.kubectl("exec", pod, "-c", "server", "--", r.engine.client, "-h", "127.0.0.1", f"-u{user}",
                      f"-p{password}", "-N", "-B", "-e", "SELECT 1", check=False, timeout=60)
        return p.returncode == 0

    def rotated(key, user):
        def probe():
            return all(logs_in(r.pod(i), user, new[key]) and not logs_in(r.pod(i), user, old[key])
                       for i in range(n))
        wait(f"every server takes the new {key} and refuses the old one", probe, 300)
        return time.time() - t0
    took = {key: rotated(key, user) for key, user in (("root-password", "root"), ("replication-password", "repl"))}
    if containers() != before:
        raise Failed(f"containers restarted or pods replaced by the rotation: {before} -> {containers()}")
    # The master's pod replaced: every replica logs in to the new one, with the new password.
    uid = before[r.pod(0)][0]
    r.kubectl("delete", "pod", r.pod(0), "--wait=false")
    wait("mysql-0 replaced", lambda: r.pods().get(r.pod(0), {}).get("metadata", {}).get("uid") not in (None, uid), 120)
    r.wait_ready(n)
    w = r.start_writer("passwords-rotated")
    time.sleep(5)
    if not r.stop_writer(w):
        raise Failed("no write acknowledged with the new root password")
    return (f"root and the token by helm upgrade, the replication password by editing the Secret: every server "
            f"took the new root password {took['root-password']:.0f} s and the replication one "
            f"{took['replication-password']:.0f} s after the change (the kubelet's update included), no restart; "
            f"the replicas logged in to the replaced master with the new one"), r.check(n)


def openssl(*args):
    return run(["openssl", *args])


def not_after(crt):
    """A certificate's notAfter, in seconds since the epoch."""
    end = openssl("x509", "-in", crt, "-noout", "-enddate").strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y %Z"))


def renew_certificates(r):
    """Certificates renewed in place, as cert-manager renews a mounted Secret: the
    release's TLS Secret given a CA of the test's and a certificate from it, then that
    certificate renewed by the same CA. With no restart, every sidecar serves the new
    certificate (its expiry metric says which), and a new pod clones verifying its
    donor with it."""
    name = f"{RELEASE}-tls"
    n = len(r.pods())
    d = tempfile.mkdtemp(prefix="e2e-tls-")
    data = json.loads(r.kubectl("get", "secret", name, "-o", "json"))["data"]
    with open(os.path.join(d, "old.crt"), "wb") as f:
        f.write(base64.b64decode(data["tls.crt"]))
    sans = openssl("x509", "-in", os.path.join(d, "old.crt"), "-noout", "-ext", "subjectAltName")
    sans = sans.splitlines()[-1].strip()
    with open(os.path.join(d, "ext"), "w") as f:
        f.write(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n")
    ca_crt, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-subj", "/CN=e2e renewal CA", "-days", "3")

    def issue(tag, days):
        crt, key, csr = (os.path.join(d, f"{tag}.{x}") for x in ("crt", "key", "csr"))
        openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=mysql-sts agent")
        openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
                "-days", str(days), "-extfile", os.path.join(d, "ext"))
        files = {"tls.crt": crt, "tls.key": key, "ca.crt": ca_crt}
        patch = {"data": {k: base64.b64encode(open(v, "rb").read()).decode() for k, v in files.items()}}
        r.kubectl("patch", "secret", name, "--type", "merge", "-p", json.dumps(patch))
        return not_after(crt)

    ctx = ssl.create_default_context(cafile=ca_crt)
    ctx.check_hostname = False  # the pods are reached by address; the CA is checked

    def served(expiry):
        line = f'mysql_sts_tls_certificate_expiry_timestamp_seconds{{file="cert"}} {expiry}\n'
        for p in r.pods().values():
            url = f"https://{p['status']['podIP']}:8080/metrics"
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                    if line not in resp.read().decode():
                        return False
            except (OSError, ssl.SSLError):
                return False
        return True
    took = []
    for tag, days in (("first", 1), ("renewed", 2)):
        t0 = time.time()
        expiry = issue(tag, days)
        wait(f"every sidecar serving the {tag} certificate", lambda: served(expiry), 300)
        took.append(time.time() - t0)
    # A new pod clones from the last one, verifying it against the CA now mounted.
    w = r.start_writer("certificates-renewed")
    scale(r, n + 1)
    log = r.init_log(n)
    if '"clone complete"' not in log:
        raise Failed(f"pod {n} did not clone after the renewal: {log[-600:]}")
    scale(r, n)
    r.stop_writer(w)
    return (f"a new CA's certificate served by every sidecar {took[0]:.0f} s after the Secret changed, its renewal "
            f"{took[1]:.0f} s after (the kubelet's update included), no restart; pod {n} cloned over TLS"), r.check(n)


def lose_volume(r, n, and_pods=()):
    """Deletes pod n with its volume claim (and the pods `and_pods` with it); once the claim
    is gone, its volume is offered again, wiped: the node has a fixed number of them."""
    claim = f"data-{RELEASE}-{n}"
    uid = json.loads(r.kubectl("get", "pvc", claim, "-o", "json"))["metadata"]["uid"]
    r.kubectl("delete", "pvc", claim, "--wait=false")
    r.kubectl("delete", "pod", r.pod(n), *[r.pod(i) for i in and_pods], "--wait=false")

    def gone():
        p = r.kubectl("get", "pvc", claim, "-o", "jsonpath={.metadata.uid}", check=False)
        return p.returncode != 0 or p.stdout.strip() != uid
    wait(f"{claim} deleted", gone, 180)
    run([KUBE, "volumes"])


def semi_sync_rebuild(r):
    """Semi-sync with no replica left to acknowledge: at 2 pods, mysql-1 loses its volume
    while the writer commits. Its rebuild from the master cannot finish while a commit waits,
    so init stops at once, naming the setting, instead of copying for ever; bringing
    another replica back (as the message says) lets the next attempt through."""
    scale(r, 2)
    w = r.start_writer("semi-sync-rebuild")
    time.sleep(3)
    old = r.pods()[r.pod(1)]["metadata"]["uid"]
    t0 = time.time()
    lose_volume(r, 1)

    code = wait("mysql-1's init stopping on the waiting commit", lambda: init_exit(r, 1, old), 300)
    took = time.time() - t0
    log = init_logs(r, 1)
    if code != 4 or "semiSync.timeout" not in log:
        raise Failed(f"init exited {code}, its log not naming semiSync.timeout: {log[-600:]}")
    scale(r, 3)
    r.stop_writer(w)
    lost = r.check(3)
    scale(r, 5)
    return (f"mysql-1's init exited 4 naming semiSync.timeout {took:.0f} s after its volume went (the pod's start "
            f"included); with mysql-2 back it cloned and the waiting commits were acknowledged"), lost


DATADIR = "/var/lib/mysql/mysql-data"  # the chart's: a directory in the volume


def init_exit(r, n, old_uid):
    """The non-zero exit code of pod n's init, once the pod that replaced old_uid has one."""
    p = r.pods().get(r.pod(n))
    if not p or p["metadata"]["uid"] == old_uid:
        return None
    for st in p["status"].get("initContainerStatuses", []):
        for state in (st.get("state", {}), st.get("lastState", {})):
            done = state.get("terminated")
            if done and done.get("exitCode") not in (None, 0):
                return done["exitCode"]
    return None


def init_logs(r, n):
    """What pod n's init said, this run and the one before."""
    return r.init_log(n) + r.kubectl("logs", r.pod(n), "-c", "init", "--previous", check=False).stdout


def aside_copy_not_empty(r):
    """A replica whose data a re-clone set aside is not empty: at 2 pods, mysql-1 asks for
    a re-clone (its data moved aside, it waits for a donor) as mysql-0 loses its volume.
    mysql-0 must not start an empty cluster over the only copy: its init exits 3 naming the
    copy. The copy moved back as the README says, mysql-0 re-seeds from it, with every
    row acknowledged before."""
    scale(r, 2)
    w = r.start_writer("aside-copy")
    wait("the writer's first acknowledged row", lambda: acks(r.kubectl("logs", w)), 120)
    r.kubectl("exec", r.pod(1), "-c", "agent", "--", "touch", f"{DATADIR}/.mysql-sts-reclone")
    old = r.pods()[r.pod(0)]["metadata"]["uid"]
    lose_volume(r, 0, and_pods=(1,))
    r.stop_writer(w)
    code = wait("mysql-0's init refusing to start empty", lambda: init_exit(r, 0, old), 300)
    if code != 3:
        raise Failed(f"mysql-0's init exited {code}, not 3: {init_logs(r, 0)[-600:]}")
    # The exited run's log may be gone already (containerd answered "unable to retrieve
    # container logs" 2 s after the restart); the next run refuses again, naming it too.
    def naming():
        log = init_logs(r, 0)
        return log if ".mysql-sts-old/" in log and f"{RELEASE}-1" in log else None
    try:
        log = wait("mysql-0's init naming mysql-1's copy", naming, 120)
    except Failed:
        raise Failed(f"mysql-0's init exited 3 without naming mysql-1's copy: {init_logs(r, 0)[-600:]}")
    said = next(line for line in log.splitlines() if ".mysql-sts-old/" in line)
    # As the README says: the copy moved back into mysql-1's datadir, mysql-1 started again.
    back = (f'set -e; cd {DATADIR}/.mysql-sts-old/*/; rm -f .mysql-sts-reclone; '
            f'for f in * .[!.]*; do [ ! -e "$f" ] || mv "$f" {DATADIR}/; done; '
            f'cd {DATADIR}; rmdir .mysql-sts-old/* .mysql-sts-old')
    wait("mysql-1's init waiting for a donor", lambda: r.kubectl(
        "exec", r.pod(1), "-c", "init", "--", "sh", "-c", f"ls -d {DATADIR}/.mysql-sts-old/*/mysql",
        check=False).returncode == 0, 120)
    r.kubectl("exec", r.pod(1), "-c", "init", "--", "sh", "-c", back)
    r.kubectl("delete", "pod", r.pod(1), "--wait=false")
    r.wait_ready(2)
    lost = r.check(2)
    scale(r, 5)
    return (f"mysql-0's init exited 3 instead of starting empty: {json.loads(said).get('fields', {}).get('message', said)[:320]}; "
            f"the copy moved back, mysql-0 re-seeded from it"), lost


def pod_pid(r, n):
    """A process of pod n (its server container's), to enter the pod's network namespace."""
    pod = r.pods()[r.pod(n)]
    cid = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "agent")["containerID"]
    cid = cid.split("//", 1)[1]
    for line in run([KUBE, "ctr", "tasks", "ls"]).splitlines():
        fields = line.split()
        if fields and fields[0] == cid:
            return fields[1]
    raise Failed(f"no task for {r.pod(n)}'s agent container")


def cut(r, n, ip, on):
    """Drops every packet between pod n and `ip`, silently (or lets them through again)."""
    pid = pod_pid(r, n)
    for chain, way in (("INPUT", "-s"), ("OUTPUT", "-d")):
        run(["nsenter", "-t", pid, "-n", "iptables", "-I" if on else "-D", chain, way, ip, "-j", "DROP"])


def relay_log_reseed(r):
    """What a replica received but had not applied survives the master's loss, and the
    replicas behind catch up without a clone. The other replicas cut off from mysql-0,
    mysql-1's applier held by a table lock: the writer's rows are acknowledged by
    mysql-1's receipt alone. Its server is killed, then mysql-0 loses its volume. mysql-1
    applies its relay log when it starts again, mysql-0 re-seeds from it, and the
    replicas that were cut off fetch what the new master's binary log lacks from mysql-1."""
    n = len(r.pods())
    master_ip = r.pods()[r.pod(0)]["status"]["podIP"]

    def starts():
        """Each replica's pod and its server's restarts: a re-clone restarts the server."""
        return {i: (p["metadata"]["uid"], next(c["restartCount"] for c in p["status"]["containerStatuses"]
                                               if c["name"] == "server"))
                for i, p in ((i, r.pods()[r.pod(i)]) for i in range(2, n))}
    before = starts()
    w = r.start_writer("relay-log")
    time.sleep(3)
    for i in range(2, n):
        cut(r, i, master_ip, True)
    try:
        lock = subprocess.Popen(
            ["kubectl", "-n", r.ns, "exec", r.pod(1), "-c", "server", "--", "sh", "-c",
             f'{r.engine.client} -uroot -p"$(cat /etc/mysql-sts/secrets/root-password)" '
             f'-e "LOCK TABLES e2e.acks READ; SELECT SLEEP(600)"'],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        held = acks(r.kubectl("logs", w))
        time.sleep(8)
        # The lock holds the applier (a WRITE lock, which MySQL's super_read_only
        # refuses, had left it running): rows acknowledged, not yet applied.
        if lock.poll() is not None:
            raise Failed(f"the table lock on mysql-1 was not taken: {lock.stderr.read().strip()[-300:]}")
        applied = {int(row[0]) for row in r.sql(r.pod(1), "SELECT id FROM e2e.acks")}
        if not acks(r.kubectl("logs", w)) - applied:
            raise Failed("mysql-1's applier was not held: it had applied every acknowledged row")
        server = next(c for c in r.pods()[r.pod(1)]["status"]["containerStatuses"] if c["name"] == "server")
        run([KUBE, "ctr", "tasks", "kill", "--signal", "SIGKILL", server["containerID"].split("//", 1)[1]])
        old = r.pods()[r.pod(0)]["metadata"]["uid"]
        lose_volume(r, 0)
        acked = r.stop_writer(w)
        lock.kill()
        wait("the old mysql-0 gone", lambda: r.pods().get(r.pod(0), {}).get("metadata", {}).get("uid") != old, 300)
    finally:
        for i in range(2, n):
            cut(r, i, master_ip, False)
    r.wait_ready(n)
    lost = r.check(n)
    after = starts()
    reclones = [i for i in range(2, n) if after[i] != before[i]]
    caught_up = [i for i in range(2, n) if "catching up" in r.kubectl("logs", r.pod(i), "-c", "agent", check=False).stdout]
    if reclones:
        raise Failed(f"pods {reclones} restarted (cloned again?) instead of catching up: {before} -> {after}")
    return (f"{len(acked - held)} rows acknowledged while only mysql-1's receipt could ({len(acked)} in the step); "
            f"mysql-0 re-seeded; pods {caught_up} caught up from the re-seed's donor, none cloned again"), lost


def backup_restore(r):
    """A backup from the chosen replica while the writer runs, more rows, a target
    second with none written in it, more rows; then a new release, in a namespace
    of its own, installed with restore.url and restore.toTime: its mysql-0 holds
    every row acknowledged before the target and none after, its replica equal."""
    out = r.kubectl("exec", r.pod(0), "-c", "agent", "--", "/opt/mysql-sts/mysql-sts", "backup", timeout=600)
    manifest = json.loads(out)
    w = r.start_writer("before the target")
    time.sleep(8)
    before = r.stop_writer(w)
    # Committed rows carry whole seconds: the target is the next whole second
    # after the writer stopped, and the next writer starts after it.
    target = int(time.time()) + 1
    while time.time() < target + 1:
        time.sleep(0.2)
    w = r.start_writer("after the target")
    time.sleep(5)
    after_ids = r.stop_writer(w)
    base_after = r.writer_seq * 1_000_000
    # The master closes a log with transactions every 10 s; its archive catches up.
    time.sleep(30)
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(target))
    b = Release(r.engine, f"{r.ns}-restored")
    remove_namespace(b.ns)
    run(["kubectl", "create", "namespace", b.ns])
    s3_keys(b)
    # The data carries the old release's accounts: the new one takes its passwords.
    secret = json.loads(r.kubectl("get", "secret", RELEASE, "-o", "json"))
    creds = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials"},
             "data": {k: v for k, v in secret["data"].items() if not k.endswith("-previous")}}
    b.kubectl("apply", "-f", "-", input=json.dumps(creds))
    t0 = time.time()
    # The node's CPU is all requested by the three releases at five pods each:
    # the restored one asks for little.
    b.helm("install", RELEASE, CHART, *b.values(), "--set", "replicas=2",
           "--set", "resources.requests.cpu=10m", "--set", "agent.resources.requests.cpu=5m",
           "--set", "auth.existingSecret=db-credentials",
           "--set", f"restore.url=s3://{BUCKET}/{r.ns}", "--set", f"restore.toTime={to}",
           "--wait", "--timeout", "10m", timeout=700)
    b.wait_ready(2)
    ready = time.time() - t0
    try:
        if "restoring a backup and the binary logs after it" not in b.init_log(0):
            raise Failed(f"mysql-0 of {b.ns} did not restore: {b.init_log(0)[-600:]}")
        restored = {int(x[0]) for x in b.sql(b.pod(0), "SELECT id FROM e2e.acks")}
        replica = {int(x[0]) for x in b.sql(b.pod(1), "SELECT id FROM e2e.acks")}
        missing = (r.acked - after_ids) - restored
        late = {i for i in restored if i >= base_after}
        if missing or late:
            raise Failed(f"restored to {to}: {len(missing)} rows acknowledged before it missing, "
                         f"{len(late)} written after it present")
        if replica != restored:
            raise Failed(f"the restored release's mysql-1 differs from its mysql-0: {len(replica ^ restored)} rows")
    finally:
        b.helm("uninstall", RELEASE, "--wait", check=False, timeout=300)
        remove_namespace(b.ns)
    return (f"backup {manifest['id']} from {manifest['source']} ({manifest['stored_bytes'] >> 10} KiB); "
            f"a new release restored to {to} in {ready:.0f} s: the {len(r.acked - after_ids)} rows acknowledged "
            f"before it ({len(before)} after the backup), none of the {len(after_ids)} after it; its mysql-1 "
            f"cloned equal"), r.check(3)


class NodeReboot:
    """The node powered off and on: kubelet and containerd stopped, every container
    killed, both started again. Every release on the node lives through it at once."""

    def before(self, r):
        # Every pod the release has (5 after the steps before; 3 when run alone).
        n = len(r.pods())
        w = r.start_writer("node-reboot")
        time.sleep(3)
        return n, w

    def action(self):
        try:
            run([KUBE, "node-stop"], timeout=120)
            time.sleep(3)
        finally:
            # The node boots again even when the power-off went wrong.
            self.booted = time.time()
            run([KUBE, "node-start"], timeout=120)

    def after(self, r, before):
        n, w = before
        r.wait_restarted(n, self.booted)
        acked = r.stop_writer(w)  # killed by the reboot; its log says what was acknowledged
        return f"every container killed, kubelet and containerd started again; {len(acked)} rows before", r.check(n)


def scale_zero(r):
    before = r.sql(r.pod(0), "CHECKSUM TABLE e2e.acks")[0][1]
    scale(r, 0)
    scale(r, 3)
    lost = r.check(3)
    after = r.sql(r.pod(0), "CHECKSUM TABLE e2e.acks")[0][1]
    if after != before:
        raise Failed(f"CHECKSUM TABLE {before} before, {after} after")
    return f"CHECKSUM TABLE {after} before and after", lost


class Drain:
    """`kubectl drain` of the node, every release's pods at once, against each
    release's PodDisruptionBudget. On one node an evicted pod cannot come back
    until the node is uncordoned, so the budget must refuse every eviction after
    the first of each release until the drain gives up."""

    TIMEOUT = 20  # s; the budget is asked again every 5 s

    def before(self, r):
        wait("the PodDisruptionBudget allowing one disruption", lambda: json.loads(
            r.kubectl("get", "pdb", RELEASE, "-o", "json"))["status"].get("disruptionsAllowed") == 1, 60)
        return {n: p["metadata"]["uid"] for n, p in r.pods().items()}

    def action(self):
        self.node = json.loads(run(["kubectl", "get", "nodes", "-o", "json"]))["items"][0]["metadata"]["name"]
        selector = f"app.kubernetes.io/instance={RELEASE}"
        proc = subprocess.Popen(["kubectl", "drain", self.node, "--pod-selector", selector, "--ignore-daemonsets",
                                 "--delete-emptydir-data", f"--timeout={self.TIMEOUT}s"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.gone = set()  # (namespace, pod uid) of each pod the drain took
        self.fewest = {}  # namespace: fewest pods Ready at once
        try:
            while proc.poll() is None:
                pods = json.loads(run(["kubectl", "get", "pods", "-A", "-l", selector, "-o", "json"]))["items"]
                ready = {}
                for p in pods:
                    ns = p["metadata"]["namespace"]
                    if p["metadata"].get("deletionTimestamp"):
                        self.gone.add((ns, p["metadata"]["uid"]))
                    ready[ns] = ready.get(ns, 0) + Release.ready(p)
                for ns, n in ready.items():
                    self.fewest[ns] = min(self.fewest.get(ns, n), n)
                time.sleep(0.5)
        finally:
            self.out = proc.stdout.read()
            run(["kubectl", "uncordon", self.node])
        self.returncode = proc.returncode

    def after(self, r, before):
        now = {p["metadata"]["uid"] for p in r.pods().values()}
        evicted = sorted(n for n, uid in before.items() if (r.ns, uid) in self.gone or uid not in now)
        r.wait_ready(3)
        if self.returncode == 0:
            raise Failed(f"the drain evicted every pod despite the PodDisruptionBudget: {self.out[-400:]}")
        if "disruption budget" not in self.out:
            raise Failed(f"the drain failed for another reason: {self.out[-400:]}")
        if len(evicted) != 1:
            raise Failed(f"the drain evicted {evicted}, not exactly one pod; drain said: {self.out[-600:]}")
        return (f"{evicted[0]} evicted, every other eviction refused by the budget for {self.TIMEOUT} s "
                f"(at least {self.fewest.get(r.ns, 0)} of 3 Ready)"), r.check(3)


def asynchronous(r):
    """mysql-0 and its volume lost under writes, with semi-sync off."""
    r.helm("upgrade", RELEASE, CHART, "--reuse-values", "--set", "semiSync.enabled=false", "--wait",
           "--timeout", "10m", timeout=700)
    r.wait_ready(3)
    note, lost = lose_master_volume(r, "async-volume-lost", replicas=3, check_timeout=60, durable=False)
    return f"semi-sync off; {note}", lost


def bad_input(engine):
    """Each mistake a user makes, answered where they look, nothing half-made."""
    ns = "e2e-bad"
    r = Release(engine, ns)
    r.backups = False
    remove_namespace(ns)
    run(["kubectl", "create", "namespace", ns])
    seen = []

    def refused(what, extra, want):
        p = r.helm("install", RELEASE, CHART, *r.values(), *extra, check=False, timeout=120)
        if p.returncode == 0:
            raise Failed(f"{what}: helm install accepted it")
        msg = (p.stderr + p.stdout).strip()
        if want not in msg:
            raise Failed(f"{what}: the message does not name the cause: {msg[-400:]}")
        left = r.kubectl("get", "statefulsets,services,secrets,pvc,pdb", "-o", "name").split()
        if left or r.helm("list", "-q").strip():
            raise Failed(f"{what}: left behind {left}")
        seen.append(f"{what}: `{msg.splitlines()[-1][:260]}`")

    refused("a missing Secret", ["--set", "auth.existingSecret=nope"], '"nope"')
    refused("values it cannot honour", ["--set", "podManagementPolicy=OrderedReady"], "podManagementPolicy")
    refused("a flavour it does not know", ["--set", "flavor=postgres"], "flavor")
    refused("semi-sync with one pod", ["--set", "replicas=1"], "would wait for ever")
    # A StatefulSet an earlier chart made with OrderedReady, a field that
    # cannot change in place: the render says how to replace it.
    old = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": RELEASE},
           "spec": {"podManagementPolicy": "OrderedReady", "replicas": 0, "serviceName": f"{RELEASE}-h",
                    "selector": {"matchLabels": {"e2e": "ordered"}},
                    "template": {"metadata": {"labels": {"e2e": "ordered"}},
                                 "spec": {"containers": [{"name": "c", "image": engine.image}]}}}}
    r.kubectl("apply", "-f", "-", input=json.dumps(old))
    p = r.helm("install", RELEASE, CHART, *r.values(), check=False, timeout=120)
    msg = (p.stderr + p.stdout).strip()
    r.kubectl("delete", "statefulset", RELEASE, "--wait=true")
    if p.returncode == 0 or "--cascade=orphan" not in msg:
        raise Failed(f"a StatefulSet made with OrderedReady: {msg[-400:]}")
    seen.append(f"a StatefulSet made with OrderedReady: `{msg.splitlines()[-1][:260]}`")
    # An image that cannot be had: the install goes through, and describe names the image and the cause.
    missing = "127.0.0.1:5999/mysql-sts/none"
    r.helm("install", RELEASE, CHART, *r.values(), "--set", f"agent.image.repository={missing}",
           "--set", "agent.image.pullPolicy=IfNotPresent", timeout=120)

    def described():
        d = r.kubectl("describe", "pod", r.pod(0))
        return ("Failed to pull image" in d and missing in d) and d
    d = wait("kubectl describe naming the missing image", described, 120)
    line = next(x for x in d.splitlines() if "Failed to pull image" in x).strip()
    seen.append(f"an image that does not exist: `{line[:160]}`")
    r.helm("uninstall", RELEASE, "--wait")
    remove_namespace(ns)
    return "; ".join(seen), None


def remove_namespace(ns):
    """Deletes the namespace and offers its volumes again, wiped."""
    run(["kubectl", "delete", "namespace", ns, "--ignore-not-found", "--wait=true"], check=False, timeout=300)

    def released():
        pvs = json.loads(run(["kubectl", "get", "pv", "-o", "json"]))["items"]
        return not [p for p in pvs if (p["spec"].get("claimRef") or {}).get("namespace") == ns
                    and p["status"].get("phase") == "Bound"]
    wait(f"the volumes of {ns} released", released, 120)
    run([KUBE, "volumes"])


# What each release goes through, in order. A list of steps runs in every release
# side by side; a node step (the node rebooted, drained) happens once, to every
# release at the same time. A release whose step failed skips the rest.
PLAN = [
    [("install (3 pods)", install), ("scale 3-5-3-5", scale_out), ("delete pods 2 and 0", delete_pods),
     ("kill mysql-0's server", kill_server), ("mysql-0 pod and volume lost", lose_master_volume),
     ("helm upgrade rolls all", rolling_upgrade), ("passwords rotated in place", rotate_passwords),
     ("certificates renewed in place", renew_certificates),
     ("semi-sync rebuild, no replica to ack", semi_sync_rebuild),
     ("relay log kept, master lost", relay_log_reseed), ("a copy set aside is not empty", aside_copy_not_empty),
     ("backup, point-in-time restore", backup_restore)],
    ("node reboot", NodeReboot),
    [("scale to 0 and back to 3", scale_zero)],
    ("drain against the PDB", Drain),
    # The same loss without semi-sync: what the durable setting buys.
    [("mysql-0 volume lost, async", asynchronous)],
]
ASYNC = {asynchronous}


def side_by_side(fn, items):
    """fn(item) for every item, each in a thread of its own; waits for all."""
    threads = [threading.Thread(target=fn, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_plan(suite, releases):
    alive = list(releases)
    for stage in PLAN:
        if isinstance(stage, list):
            def steps(r, stage=stage):
                for name, fn in stage:
                    if not suite.step(r, name, lambda fn=fn: fn(r), durable=fn not in ASYNC):
                        alive.remove(r)
                        return
            side_by_side(steps, list(alive))
        else:
            name, kind = stage
            for r in suite.node_step(name, kind(), list(alive)):
                alive.remove(r)

    def remove(r):
        def uninstall():
            r.helm("uninstall", RELEASE, "--wait", check=False, timeout=300)
            remove_namespace(r.ns)
            return "release, namespace and volumes removed", None
        suite.step(r, "uninstall", uninstall)
    side_by_side(remove, releases)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="mariadb,mariadb11,mysql")
    ap.add_argument("--steps", help="run only the steps whose names contain one of these "
                    "comma-separated words (the install always runs); no report unless --report")
    ap.add_argument("--report")
    args = ap.parse_args()
    engines = [ENGINES[k] for k in args.engines.split(",") if k]
    if args.steps:
        words = args.steps.split(",")
        PLAN[:] = [[s for s in stage if s[1] is install or any(w in s[0] for w in words)]
                   if isinstance(stage, list) else stage
                   for stage in PLAN if isinstance(stage, list) or any(w in stage[0] for w in words)]
    elif not args.report:
        args.report = os.path.join(ROOT, "docs", "KUBERNETES.md")
    kube_env()
    global STORE
    STORE = Store()

    def stopped(signum, frame):
        """Stopped from outside (an interrupted scripts/test): the store goes with it."""
        STORE.stop()
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, stopped)
    started = time.time()
    suite = Suite(args.report, engines)
    run_plan(suite, [Release(e, f"e2e-{e.key}") for e in engines])
    if not args.steps or "bad input" in args.steps:
        suite.step(None, "bad input", lambda: bad_input(engines[0]))
    if args.report:
        suite.write_report(engines, started)
    STORE.stop()
    passed = sum(1 for row in suite.rows if row[3])
    failed = len(suite.rows) - passed
    print(f"kube e2e: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
