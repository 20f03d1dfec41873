#!/usr/bin/env python3
"""Crash consistency: kill the server with SIGKILL at random moments under a
concurrent write load, restart it, and check that nothing acknowledged was lost.

Each trial starts `coffer server --config` on one data directory (kept across
trials, so history accumulates), unseals it, and runs workers that write
secrets, rotate them, import batches, create and revoke tokens, and rotate the
audit log, recording every request the server acknowledged. At a random moment
the server gets SIGKILL. After the restart, before unsealing, no secret may be
readable; after unsealing:

  * every write, rotation and import acknowledged since the last restart is
    readable, at its version, with its value, and so is a random sample
    (--recheck, default 300) of those acknowledged before;
  * every acknowledged token revocation holds;
  * the audit log (and its rotated files) verifies against its head.

Usage: bench/crash/crash.py --coffer target/release/coffer --trials 1000
       bench/crash/crash.py --coffer target/release/coffer --trials 200 \
           --postgres postgres://USER@HOST:PORT/DB
Prints one line per failed check and a summary; exits 1 if any check failed.
Only loopback addresses are used.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, base, token=None):
        self.base = base
        self.token = token

    def call(self, method, path, body=None, token=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        tok = token or self.token
        if tok:
            req.add_header("Authorization", "Bearer " + tok)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, None


class Checker:
    """GETs over one kept-alive connection (the checks after each restart
    read thousands of values; a connection each would dominate a trial).
    Reads only, so a request cut by a dropped connection is simply sent again."""

    def __init__(self, port, token):
        self.port = port
        self.token = token
        self.conn = None

    def get(self, path, token=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("GET", path, headers={"Authorization": "Bearer " + (token or self.token)})
                r = self.conn.getresponse()
                raw = r.read()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                return r.status, body
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise


class Ledger:
    """What the server acknowledged, across trials."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}  # (path, version) -> value
        self.fresh = {}  # acknowledged since the last check: all checked next
        self.revoked = []  # raw tokens whose revocation was acknowledged
        self.counter = 0

    def next(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def wrote(self, path, version, value):
        with self.lock:
            self.values[(path, version)] = value
            self.fresh[(path, version)] = value

    def revoked_token(self, token):
        with self.lock:
            self.revoked.append(token)


def worker(kind, client, ledger, stop, rng):
    """Runs one kind of load until `stop` is set or the server dies."""
    while not stop.is_set():
        n = ledger.next()
        try:
            if kind == "write":
                path = f"crash/w/k{rng.randrange(200)}"
                value = f"v{n}-{rng.getrandbits(64):016x}"
                st, body = client.call("PUT", "/api/v1/secrets/" + path, {"value": value})
                if st == 200:
                    ledger.wrote(path, body["version"], value)
            elif kind == "rotate":
                path = f"crash/r/k{rng.randrange(20)}"
                value = f"r{n}-{rng.getrandbits(64):016x}"
                st, body = client.call("PUT", "/api/v1/secrets/" + path, {"value": value})
                if st == 200:
                    ledger.wrote(path, body["version"], value)
                    value2 = value + "-rotated"
                    st, body = client.call("POST", "/api/v1/rotate/" + path, {"value": value2, "grace": "1h"})
                    if st == 200:
                        ledger.wrote(path, body["version"], value2)
            elif kind == "import":
                entries = [
                    {"path": f"crash/i/b{n}/k{j}", "value": f"i{n}-{j}-{rng.getrandbits(32):08x}"}
                    for j in range(rng.randrange(1, 50))
                ]
                st, body = client.call("POST", "/api/v1/import", {"secrets": entries})
                if st == 200:
                    for entry, w in zip(entries, body["written"]):
                        ledger.wrote(w["path"], w["version"], entry["value"])
            elif kind == "tokens":
                st, body = client.call("POST", "/api/v1/auth/tokens", {"policies": ["crash"], "ttl": "1h"})
                if st == 200:
                    token, accessor = body["token"], body["accessor"]
                    st, _ = client.call("DELETE", "/api/v1/auth/tokens/" + accessor)
                    if st in (200, 204):
                        ledger.revoked_token(token)
            elif kind == "audit":
                client.call("POST", "/api/v1/sys/audit/rotate", {})
                time.sleep(0.05)
        except (OSError, ValueError, KeyError):
            # The server died (or answered nonsense while dying): nothing
            # was acknowledged by this request.
            if stop.wait(0.01):
                return


def start(coffer, config, log):
    proc = subprocess.Popen(
        [coffer, "server", "--config", config],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    return proc


def wait_up(client, proc, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            st, body = client.call("GET", "/api/v1/sys/status", timeout=2)
            if st in (200, 503, 501):
                return body
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("server did not answer")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coffer", required=True)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--postgres", help="a PostgreSQL URL (an empty database) instead of SQLite")
    ap.add_argument("--min-ms", type=int, default=50)
    ap.add_argument("--max-ms", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument(
        "--recheck",
        type=int,
        default=300,
        help="values acknowledged in earlier trials (and checked after their own) read again after each trial",
    )
    ap.add_argument(
        "--no-audit-rotation",
        action="store_true",
        help="leave audit log rotation out of the load (by default kills land in the middle "
        "of rotations too, which the next start must finish or undo)",
    )
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="coffer-crash-")
    data = os.path.join(work, "data")
    port = free_port()
    config = os.path.join(work, "coffer.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\ndata_dir = "{data}"\n')
        if args.postgres:
            f.write(f'[storage]\nurl = "{args.postgres}"\n')
    log = open(os.path.join(work, "server.log"), "ab")
    client = Client(f"http://127.0.0.1:{port}")

    proc = start(args.coffer, config, log)
    wait_up(client, proc)
    st, init = client.call("POST", "/api/v1/sys/init", {"shares": 1, "threshold": 1})
    assert st == 200, (st, init)
    unseal_key = init["unseal_keys"][0]
    client.token = init["root_token"]
    st, _ = client.call("POST", "/api/v1/sys/unseal", {"key": unseal_key})
    assert st == 200, st
    st, body = client.call(
        "PUT", "/api/v1/sys/policies/crash", {"policy": 'path "crash/*" { capabilities = ["read"] }'}
    )
    assert st in (200, 204), (st, body)
    ledger = Ledger()
    failures = []
    checked = {"values": 0, "revocations": 0, "audit_records": 0}

    def fail(msg):
        failures.append(msg)
        print("FAIL:", msg, flush=True)

    for trial in range(args.trials):
        st, _ = client.call("POST", "/api/v1/sys/unseal", {"key": unseal_key})
        if st != 200:
            fail(f"trial {trial}: unseal answered {st}")
            break
        stop = threading.Event()
        kinds = ["write", "write", "rotate", "import", "tokens"]
        if not args.no_audit_rotation:
            kinds.append("audit")
        threads = [
            threading.Thread(target=worker, args=(k, client, ledger, stop, random.Random(rng.random())), daemon=True)
            for k in kinds
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(args.min_ms, args.max_ms) / 1000)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join(timeout=30)

        proc = start(args.coffer, config, log)
        try:
            status = wait_up(client, proc)
        except RuntimeError as e:
            fail(f"trial {trial}: restart failed: {e}")
            break
        # Sealed after a restart: nothing readable.
        if ledger.values:
            (path, version), _ = next(iter(ledger.values.items()))
            st, _ = client.call("GET", f"/api/v1/secrets/{path}?version={version}")
            if st != 503:
                fail(f"trial {trial}: a read before unseal answered {st}, not 503 sealed")
        st, _ = client.call("POST", "/api/v1/sys/unseal", {"key": unseal_key})
        if st != 200:
            fail(f"trial {trial}: unseal after restart answered {st}")
            break
        # Every value acknowledged since the last check, at its version, and
        # a sample of those checked before (a later crash must not lose them
        # either).
        checker = Checker(port, client.token)
        older = [k for k in ledger.values if k not in ledger.fresh]
        sample = rng.sample(older, min(len(older), args.recheck))
        to_check = list(ledger.fresh.items()) + [(k, ledger.values[k]) for k in sample]
        ledger.fresh.clear()
        for (path, version), value in to_check:
            st, body = checker.get(f"/api/v1/secrets/{path}?version={version}")
            checked["values"] += 1
            if st != 200 or body.get("value") != value:
                fail(f"trial {trial}: acknowledged {path} v{version} reads {st} {body and body.get('error')}")
        # Every acknowledged revocation.
        for token in ledger.revoked:
            st, _ = checker.get("/api/v1/auth/token/self", token=token)
            checked["revocations"] += 1
            if st != 401:
                fail(f"trial {trial}: a revoked token answered {st}")
        ledger.revoked.clear()  # checked once: a revocation can't come undone later unnoticed by the next check of its token
        # The audit log and its rotated files verify against the head.
        st, body = client.call("POST", "/api/v1/sys/audit/verify", {"rotated": True}, timeout=120)
        if st != 200 or not body.get("ok"):
            bad = [f for f in (body or {}).get("files", []) if not f.get("ok")] or body
            fail(f"trial {trial}: audit verify: {st} {json.dumps(bad)[:800]}")
            # The log stays flagged: every later trial would report the same.
            break
        else:
            checked["audit_records"] = sum(f.get("records", 0) for f in body.get("files", []))
        if (trial + 1) % 50 == 0:
            print(f"trial {trial + 1}: {len(ledger.values)} values, {len(failures)} failures", flush=True)
        # Re-check the older values only now and then: the set grows.
        if len(ledger.values) > 5000:
            keep = dict(rng.sample(sorted(ledger.values.items()), 2000))
            ledger.values = keep

    proc.send_signal(signal.SIGTERM)
    proc.wait()
    backend = "postgres" if args.postgres else "sqlite"
    print(
        f"crash: {backend}, {args.trials} trials (seed {seed}): {len(failures)} failed checks; "
        f"checked {checked['values']} acknowledged values, {checked['revocations']} revocations, "
        f"audit log of {checked['audit_records']} records"
    )
    if not args.keep and not failures:
        subprocess.run(["rm", "-rf", work])
    else:
        print("data kept in", work)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
