#!/usr/bin/env python3
"""Fault injection: PostgreSQL restarted, and made unreachable, under load.

Starts a PostgreSQL cluster of its own (initdb into a temporary directory,
`postgres` on a free loopback port, as the `postgres` user when run as
root) and `coffer server` on it, with writers storing secrets and noting
every write the server acknowledged. Then, under that load:

  restart      `pg_ctl restart -m fast`: every connection is cut and the
               server is back within about a second;
  unreachable  `pg_ctl stop -m immediate`, 5 seconds with nothing on the
               port, `pg_ctl start`.

Checks: during the outage no write is acknowledged unless it is durable
(every acknowledged write reads back at its version afterwards); coffer
serves writes again after the database comes back, without a restart of
coffer (the time it took is printed); after a restart of coffer too,
every acknowledged write reads back and `audit verify` passes.

Usage: bench/faults/postgres.py --coffer target/debug/coffer
Exits 1 if any check failed.
"""

import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crash"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash import Client, free_port, wait_up  # noqa: E402
from faults import Load, summarize  # noqa: E402


def pg_bin(name):
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    found = shutil.which(name)
    if not found:
        sys.exit(f"postgres.py needs PostgreSQL's {name} (Debian: apt-get install postgresql)")
    return found


class Cluster:
    def __init__(self, work):
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        self.root = os.geteuid() == 0
        if self.root:
            pw = pwd.getpwnam("postgres")
            os.chown(work, pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.run(pg_bin("initdb"), "-D", self.dir, "-A", "trust", "-U", "postgres", "--no-sync")
        with open(os.path.join(self.dir, "postgresql.conf"), "a") as f:
            f.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
            )
        self.ctl("start", "-w", "-l", os.path.join(self.dir, "log"))
        self.run(pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "coffer")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/coffer?sslmode=disable"

    def run(self, *cmd):
        if self.root:
            cmd = ("runuser", "-u", "postgres", "--") + cmd
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.returncode} {r.stderr.strip()}")

    def ctl(self, *args):
        self.run(pg_bin("pg_ctl"), "-D", self.dir, *args)

    def stop(self):
        try:
            self.ctl("stop", "-m", "immediate")
        except RuntimeError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coffer", required=True)
    ap.add_argument("--outage", type=float, default=5.0)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="coffer-pgfaults-")
    os.chmod(work, 0o755)
    failures = []

    def fail(msg):
        failures.append(msg)
        print("FAIL:", msg, flush=True)

    cluster = Cluster(work)
    data = os.path.join(work, "data")
    port = free_port()
    config = os.path.join(work, "coffer.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\ndata_dir = "{data}"\n[storage]\nurl = "{cluster.url}"\n')
    log = open(os.path.join(work, "server.log"), "ab")
    client = Client(f"http://127.0.0.1:{port}")
    coffer = os.path.abspath(args.coffer)
    proc = subprocess.Popen([coffer, "server", "--config", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    results = []
    try:
        wait_up(client, proc)
        st, init = client.call("POST", "/api/v1/sys/init", {"shares": 1, "threshold": 1})
        assert st == 200, (st, init)
        key = init["unseal_keys"][0]
        client.token = init["root_token"]
        st, _ = client.call("POST", "/api/v1/sys/unseal", {"key": key})
        assert st == 200, st
        load = Load(client)
        load.start()
        time.sleep(2)
        for fault in ("restart", "unreachable"):
            t0 = time.time()
            if fault == "restart":
                cluster.ctl("restart", "-w", "-m", "fast", "-l", os.path.join(cluster.dir, "log"))
            else:
                cluster.ctl("stop", "-w", "-m", "immediate")
                time.sleep(args.outage)
                st, health = client.call("GET", "/api/v1/sys/health", timeout=10)
                results_health = (st, health)
                cluster.ctl("start", "-w", "-l", os.path.join(cluster.dir, "log"))
            t1 = time.time()
            resumed = None
            end = time.time() + 30
            while time.time() < end:
                time.sleep(0.1)
                if 200 in load.between(t1, time.time()):
                    resumed = round(time.time() - t1, 2)
                    break
            r = {
                "fault": fault,
                "outage_s": round(t1 - t0, 2),
                "during": summarize(load.between(t0 + 0.2, t1)),
                "after": summarize(load.between(t1, time.time())),
                "resumed_after_s": resumed,
            }
            if fault == "unreachable":
                r["health_during"] = [results_health[0], (results_health[1] or {}).get("storage_available")]
            if resumed is None:
                fail(f"{fault}: writes did not resume within 30 s of the database coming back")
            results.append(r)
            print(json.dumps(r), flush=True)
            time.sleep(2)
        load.halt()
        # Everything acknowledged, before and after a restart of coffer.
        for phase in ("running", "restarted"):
            if phase == "restarted":
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                proc = subprocess.Popen(
                    [coffer, "server", "--config", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL
                )
                wait_up(client, proc)
                st, _ = client.call("POST", "/api/v1/sys/unseal", {"key": key})
                if st != 200:
                    fail(f"unseal after restart answered {st}")
            lost = 0
            for (path, version), (value, _) in sorted(load.acked.items()):
                st, body = client.call("GET", f"/api/v1/secrets/{path}?version={version}")
                if st != 200 or body.get("value") != value:
                    lost += 1
                    if lost <= 5:
                        fail(f"{phase}: acknowledged {path} v{version} reads {st} {body and body.get('error')}")
            print(f"{phase}: {len(load.acked)} acknowledged writes, {lost} lost", flush=True)
        st, body = client.call("POST", "/api/v1/sys/audit/verify", {"rotated": True}, timeout=120)
        if st != 200 or not body.get("ok"):
            fail(f"audit verify: {st} {json.dumps(body)[:600]}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.stop()
    print(f"postgres faults: {len(results)} faults run, {len(failures)} failed checks")
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("data kept in", work)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
