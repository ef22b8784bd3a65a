#!/usr/bin/env python3
"""Renders the table of scenarios in docs/RELIABILITY.md (the part from its
`<!-- scenarios -->` marker on) from a run of the scenario tests: libtest's
`test NAME ... ok` lines and the JSON lines the tests append to the report file.
Usage: scenarios-report.py RUN_LOG REPORT_JSONL
       scenarios-report.py --filters   (the test name filters that run them)"""
import json, re, subprocess, sys
from pathlib import Path

MARK = "<!-- scenarios -->"
ENGINES = (("mariadb", "MariaDB 10.11"), ("mariadb11", "MariaDB 11.8"), ("mysql", "MySQL 9.7"))
# item, what could go wrong, the tests that show it does not (a name with {e}
# runs once per engine); with what the kube end-to-end suite tries, named.
SCENARIOS = [
    ("1", "semi-sync rebuild with no replica to acknowledge", ["semi_sync::{e}_rebuild_under_a_waiting_commit"],
     "semi-sync rebuild, no replica to ack"),
    ("2", "the master lost while replicas' data is set aside for a re-clone", ["cluster::{e}_statefulset_lifecycle"],
     "a copy set aside is not empty"),
    ("3", "rows acknowledged by a replica's receipt alone, then the master lost",
     ["semi_sync::{e}_received_not_applied_survives"], "relay log kept, master lost"),
    ("4", "a MariaDB peer with an errant write of the same sequence number wins the re-seed",
     ["lib::engine::mariadb::gtid::tests::inclusion_table", "lib::engine::mariadb::gtid::tests::errant_table"], None),
    ("5", "a peer whose server stopped publishes its last GTIDs",
     ["lib::init::donor::tests::a_sidecar_whose_server_is_away_says_nothing_of_its_data"], None),
    ("6", "a restarted master's first commit", ["semi_sync::{e}_restarted_master_waits_from_its_first_commit"], None),
    ("7", "the agent's statements under a semi-sync stall",
     ["semi_sync::{e}_timed_out_statements_are_killed", "semi_sync::{e}_a_statement_that_times_out_is_killed"], None),
    ("8", "copies set aside by re-clones", ["day_two::{e}_aside_copies_are_reclaimed"], None),
    ("9", "MySQL re-clone beside a copy set aside", ["cluster::mysql_statefulset_lifecycle"], None),
    ("10", "a replica behind the re-seed's donor", ["semi_sync::{e}_received_not_applied_survives"],
     "relay log kept, master lost"),
    ("11", "certificates renewed in place", ["cluster::{e}_certificates_renewed_in_place"],
     "certificates renewed in place"),
    ("12", "passwords and the clone token rotated in place", ["cluster::{e}_passwords_rotated_in_place"],
     "passwords rotated in place"),
    ("13", "the replication password in MariaDB's binary log",
     ["lib::engine::mariadb::tests::native_password_hash_is_what_password_makes", "cluster::{e}_statefulset_lifecycle"],
     None),
    ("14", "a donor's names the recipient trusts",
     ["lib::engine::mariadb::clone::tests::prepare_takes_the_layout_and_no_place_from_the_donor"], None),
    ("15", "semi-sync settings that can never acknowledge", ["cli::semi_sync_that_can_never_acknowledge_is_refused"],
     None),
    ("16", "the agent's time slice in the server init runs", ["cli::the_server_init_runs_gets_the_default_time_slice"],
     None),
    ("17", "a donor's backup within the agent container's memory limit", ["cluster::{e}_statefulset_lifecycle"],
     None),
    ("18", "auto-reclone judging purged against what was only executed", ["day_two::{e}_received_is_not_missing"],
     None),
    ("19", "the stream's trailer to a recipient that stopped reading",
     ["lib::engine::mariadb::backup::tests::a_frame_the_recipient_never_takes_is_given_up"], None),
    ("20", "compose's sidecars without MYSQL_STS_REPLICAS", ["compose::compose_{e}_cluster"], None),
    ("21", "a helm upgrade over a StatefulSet made with OrderedReady", [], "bad input"),
    ("22", "a master stopped while a commit waits for an acknowledgement no replica gave",
     ["semi_sync::{e}_a_stopping_master_answers_no_unacknowledged_commit"], "relay log kept, master lost"),
    ("23", "a re-seed from a donor whose applier is held", ["semi_sync::{e}_reseed_waits_for_a_held_applier"],
     "relay log kept, master lost"),
    ("B1", "a backup while the master takes writes, and a replica seeded from it",
     ["backup::{e}_backup_then_seed_a_replica"], None),
    ("B2", "a backup cut short (its sidecar or the store killed), damaged in the bucket, or another engine's",
     ["backup::{e}_backup_cut_short_damaged_or_foreign"], None),
    ("B3", "backups on a schedule: the pod that takes them, retention, another pod taking over",
     ["backup::{e}_backups_on_a_schedule"], None),
    ("B4", "a new release restored to a point in time: a backup and the archived binary logs after it",
     ["backup::{e}_restore_to_a_point_in_time"], "backup, point-in-time restore"),
    ("B5", "a store whose certificate the CA given (or the system's trust store) does not vouch for",
     ["backup::the_stores_certificate_is_verified"], None),
]


def names(tests):
    """Every test a scenario runs: the per-engine ones once per engine (MySQL's only
    where a MySQL variant exists: the run log says)."""
    for t in tests:
        if "{e}" in t:
            for e, _ in ENGINES:
                yield e, t.format(e=e)
        else:
            yield None, t


def main():
    if sys.argv[1:] == ["--filters"]:
        def name_filter(t):
            name = t.split("::")[-1]
            if "{e}" in name:  # the longest part without the engine
                return max(name.split("{e}"), key=len).strip("_")
            return re.sub(r"^(mariadb11|mariadb|mysql)_", "", name)
        print(" ".join(sorted({name_filter(t) for _, _, ts, _ in SCENARIOS for t in ts})))
        return
    log, report = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
    results = {}  # "binary::name" -> "ok" | "FAILED"
    binary = None
    for line in log.splitlines():
        m = re.match(r"\s*Running (?:unittests )?\S*?(?:tests/)?([a-z_]+)(?:\.rs)? \(", line)
        if m:
            binary = "lib" if "unittests" in line and "src/lib.rs" in line else m.group(1)
        m = re.match(r"test (\S+) \.\.\. (ok|FAILED)", line)
        if m and binary:
            results[f"{binary}::{m.group(1)}"] = m.group(2)
    measured = {}
    if report.exists():
        for line in report.read_text().splitlines():
            r = json.loads(line)
            measured.setdefault((r["scenario"].split(".", 1)[0], r["engine"]), []).append(r["measured"])
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = [MARK, "", "## Scenarios", "",
           f"Generated by `scripts/test` (or `scripts/reliability scenarios`, these tests alone) at commit {rev}; do not edit.", "",
           "Each path a review found where an acknowledged write could be lost or a cluster could",
           "wedge, with the tests that failed on the code before its fix and pass now, and what",
           "they measured in this run (on the engines where the test runs). *Kubernetes* names the",
           "step of `tests/kube/e2e.py` that tries it on the real cluster (docs/KUBERNETES.md).", "",
           "| item | scenario | tests | result | measured | Kubernetes |", "| --- | --- | --- | --- | --- | --- |"]
    failed = 0
    for item, what, tests, kube in SCENARIOS:
        ran = [(e, t, results.get(t)) for e, t in names(tests)]
        ran = [r for r in ran if r[2] is not None]
        bad = [t for _, t, res in ran if res != "ok"]
        failed += len(bad) + (not ran and bool(tests))
        result = ("on the real cluster" if not tests else "not run" if not ran
                  else f"FAILED: {', '.join(bad)}" if bad else f"{len(ran)} passed")
        shown = [t.split("::", 1)[0] + "::" + t.split("::")[-1].replace("{e}", "*") for t in tests]
        figures = "; ".join(f"{label}: {' / '.join(measured[(item, e)])}"
                            for e, label in ENGINES if (item, e) in measured)
        out.append(f"| {item} | {what} | {', '.join(f'`{s}`' for s in shown)} | {result} | {figures or '-'} | "
                   f"{kube or '-'} |")
    out.append("")
    doc = Path("docs/RELIABILITY.md")
    text = doc.read_text()
    head = text.split(MARK, 1)[0].rstrip("\n")
    doc.write_text(head + "\n\n" + "\n".join(out))
    print(f"scenarios: {len(SCENARIOS)} rows, {failed} failed or not run")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
