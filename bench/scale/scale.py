#!/usr/bin/env python3
"""Scale: coffer with a million secrets, a hundred thousand tokens and ten
million audit records, on SQLite and on PostgreSQL (issue 28, part 5).

For each backend it starts the real binary (`coffer server --config`, a
private data directory, loopback only), initialises and unseals it through
the API, then measures:

  * bulk import: `POST /api/v1/import` in batches of SCALE_BATCH secrets
    (`scale/fNNNN/sNNN`, 1,000 to a folder), from SCALE_CLIENTS connections;
    then SCALE_VERSIONS - 1 more versions of the first SCALE_VERSIONED share
    of them, the same way;
  * token creation (`POST /api/v1/auth/tokens`) of SCALE_TOKENS tokens;
  * the audit log topped up to SCALE_AUDIT records with the server stopped,
    by `audit_fill` (crates/coffer-cli/examples/audit_fill.rs: the server's
    own audit writer and audit key, so the chain is real);
  * start and unseal: from starting the process to the first answer, and the
    unseal request, and the first read after it;
  * listing one 1,000-entry folder (`GET /api/v1/list/scale/f0000/`),
    SCALE_LIST_CALLS times, as root and as a token whose policy allows
    `scale/*`: median and p99 (and the first, cold, call);
  * reads under load: wrk (bench/wrk/read.lua) on one secret for
    SCALE_READ_DURATION, p50/p99 and requests/s;
  * resident memory (VmRSS, VmHWM from /proc/PID/status) after unseal and
    after the read load; database size;
  * `coffer audit verify` over the whole log: records per second.

Settings (environment):
  SCALE_COFFER        coffer binary            (target/release/coffer)
  SCALE_AUDIT_FILL    audit_fill binary        (target/release/examples/audit_fill)
  SCALE_BACKENDS      "sqlite postgres"
  SCALE_SECRETS       1000000       SCALE_VERSIONED  0.10     SCALE_VERSIONS 10
  SCALE_TOKENS        100000        SCALE_AUDIT      10000000
  SCALE_BATCH         1000          SCALE_CLIENTS    2
  SCALE_TOKEN_CLIENTS 32 (connections creating tokens)
  SCALE_VALUES        random (58 random URL-safe characters, like an API key)
                      or typed (looks typed: the strength estimator runs)
  SCALE_LIST_CALLS    200           SCALE_READ_DURATION 10s
  SCALE_PG_URL        an administrator URL of a PostgreSQL to use instead of
                      a private one (initdb/pg_ctl, as `postgres` when root)
  SCALE_OUT           bench/results/scale (writes .md and .json)
  SCALE_KEEP          1: keep the temporary directory

Usage:
  CARGO_TARGET_DIR=... cargo build --release -p coffer-cli --bin coffer --example audit_fill
  bench/scale/scale.py                                     # the issue's full sizes
  SCALE_SECRETS=200000 SCALE_TOKENS=20000 SCALE_AUDIT=2000000 bench/scale/scale.py
"""

import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def env(name, default):
    return os.environ.get(name, default)


COFFER = env("SCALE_COFFER", os.path.join(ROOT, "target/release/coffer"))
FILL = env("SCALE_AUDIT_FILL", os.path.join(ROOT, "target/release/examples/audit_fill"))
BACKENDS = env("SCALE_BACKENDS", "sqlite postgres").split()
SECRETS = int(env("SCALE_SECRETS", "1000000"))
VERSIONED = float(env("SCALE_VERSIONED", "0.10"))
VERSIONS = int(env("SCALE_VERSIONS", "10"))
TOKENS = int(env("SCALE_TOKENS", "100000"))
AUDIT = int(env("SCALE_AUDIT", "10000000"))
BATCH = int(env("SCALE_BATCH", "1000"))
CLIENTS = int(env("SCALE_CLIENTS", "2"))
TOKEN_CLIENTS = int(env("SCALE_TOKEN_CLIENTS", "32"))
VALUES = env("SCALE_VALUES", "random")
LIST_CALLS = int(env("SCALE_LIST_CALLS", "200"))
READ_DURATION = env("SCALE_READ_DURATION", "10s")
OUT = env("SCALE_OUT", os.path.join(ROOT, "bench/results/scale"))
FOLDER = 1000  # secrets to a folder

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def value(rng, n):
    if VALUES == "typed":
        # Looks like something a person typed: the estimator runs on it.
        return f"value-{n:08d}-" + "x" * 20
    return "bench-" + "".join(rng.choice(ALPHABET) for _ in range(58))


def path_of(i):
    return f"scale/f{i // FOLDER:04d}/s{i % FOLDER:03d}"


class Conn:
    """One keep-alive HTTP connection."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None, token=None):
        headers = {}
        tok = token or self.token
        if tok:
            headers["Authorization"] = "Bearer " + tok
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.c.request(method, path, data, headers)
                r = self.c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (ConnectionError, http.client.HTTPException):
                if attempt:
                    raise
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024  # MiB
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def as_pg(args, **kw):
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=True, **kw)


class Postgres:
    """A private PostgreSQL (or SCALE_PG_URL), one database per run."""

    def __init__(self, tmp):
        self.data = None
        if env("SCALE_PG_URL", ""):
            self.admin = env("SCALE_PG_URL", "")
            self.base = self.admin.rsplit("/", 1)[0]
            self.note = "external server"
            return
        bins = sorted(
            (d for d in os.listdir("/usr/lib/postgresql") if os.path.isdir(f"/usr/lib/postgresql/{d}/bin")),
            key=lambda v: [int(x) for x in v.split(".") if x.isdigit()],
        )
        if not bins:
            sys.exit("PostgreSQL's server is needed (Debian: apt-get install postgresql), or set SCALE_PG_URL")
        self.bin = f"/usr/lib/postgresql/{bins[-1]}/bin"
        d = os.path.join(tmp, "pg")
        os.makedirs(d)
        if os.geteuid() == 0:
            shutil.chown(d, "postgres", "postgres")
            os.chmod(tmp, 0o755)
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write("scale-pg-password\n")
        if os.geteuid() == 0:
            shutil.chown(pw, "postgres", "postgres")
        self.data = os.path.join(d, "data")
        as_pg([f"{self.bin}/initdb", "-D", self.data, "-U", "coffer", "-A", "scram-sha-256",
               f"--pwfile={pw}", "-E", "UTF8"], stdout=subprocess.DEVNULL)
        port = free_port()
        as_pg([f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(d, "log"), "-w", "-o",
               f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={d} "
               "-c shared_buffers=256MB -c max_connections=200", "start"], stdout=subprocess.DEVNULL)
        self.base = f"postgres://coffer:scale-pg-password@127.0.0.1:{port}"
        self.admin = self.base + "/postgres"
        version = subprocess.run([f"{self.bin}/postgres", "--version"], capture_output=True, text=True).stdout.split()[2]
        self.note = f"PostgreSQL {version}, private, fsync and synchronous_commit on, shared_buffers 256MB"

    def new_database(self):
        name = f"coffer_scale_{os.getpid()}_{random.randrange(1 << 30)}"
        subprocess.run(["psql", "-q", self.admin, "-c", f"CREATE DATABASE {name}"], check=True)
        return name, f"{self.base}/{name}?sslmode=disable"

    def size(self, name):
        out = subprocess.run(["psql", "-qtA", self.admin, "-c", f"SELECT pg_database_size('{name}')"],
                             check=True, capture_output=True, text=True).stdout
        return int(out.strip())

    def stop(self):
        if self.data:
            as_pg([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Server:
    def __init__(self, tmp, name, storage_url):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.config = os.path.join(self.dir, "coffer.toml")
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{self.dir}/data"\nlisten = "127.0.0.1:{self.port}"\n')
            if storage_url:
                f.write(f'[storage]\nurl = "{storage_url}"\n')
        self.proc = None

    def start(self):
        """Starts the process; returns seconds until it answers."""
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [COFFER, "server", "--config", self.config],
            stdout=open(os.path.join(self.dir, "out.log"), "ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "COFFER_LOG": "warn"},
        )
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/api/v1/sys/seal-status")
                c.getresponse().read()
                return time.perf_counter() - t
            except OSError:
                if self.proc.poll() is not None:
                    sys.exit(f"the server exited: see {self.dir}/out.log")
                time.sleep(0.005)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def parallel(n_jobs, clients, work):
    """Runs work(conn_index, job) for jobs 0..n_jobs on `clients` threads."""
    lock = threading.Lock()
    next_job = [0]
    errors = []

    def run(k):
        while True:
            with lock:
                j = next_job[0]
                next_job[0] += 1
            if j >= n_jobs or errors:
                return
            try:
                work(k, j)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t


def wrk_read(port, token, path):
    lua = os.path.join(ROOT, "bench/wrk")
    e = {**os.environ, "WRK_LUA_DIR": lua, "WRK_AUTH_HEADER": "Authorization",
         "WRK_AUTH_VALUE": "Bearer " + token, "WRK_READ_PATH": "/api/v1/secrets/" + path}
    out = subprocess.run(["wrk", "-t2", "-c16", "-d", READ_DURATION, "-s", os.path.join(lua, "read.lua"),
                          f"http://127.0.0.1:{port}"], env=e, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH_JSON "))
    return json.loads(line[len("BENCH_JSON "):])


def run_backend(backend, tmp, pg):
    res = {"backend": backend}
    dbname, url = (None, None)
    if backend == "postgres":
        dbname, url = pg.new_database()
    srv = Server(tmp, backend, url)
    srv.start()
    c = Conn(srv.port)
    st, init = c.call("POST", "/api/v1/sys/init", {"shares": 1, "threshold": 1})
    assert st == 200, (st, init)
    key, root = init["unseal_keys"][0], init["root_token"]
    st, _ = c.call("POST", "/api/v1/sys/unseal", {"key": key})
    assert st == 200
    c.token = root
    st, _ = c.call("PUT", "/api/v1/sys/policies/scale",
                   {"policy": 'path "scale/*" { capabilities = ["read", "list"] }\n'})
    assert st in (200, 204), st
    st, body = c.call("POST", "/api/v1/auth/tokens", {"policies": ["scale"], "display_name": "scale"})
    assert st == 200, (st, body)
    reader = body["token"]

    # --- bulk import -----------------------------------------------------------
    conns = [Conn(srv.port, root) for _ in range(CLIENTS)]
    rngs = [random.Random(k) for k in range(CLIENTS)]
    batches = (SECRETS + BATCH - 1) // BATCH

    def import_batch(k, b, first=0):
        lo = first + b * BATCH
        hi = min(lo + BATCH, SECRETS)
        entries = [{"path": path_of(i), "value": value(rngs[k], i)} for i in range(lo, hi)]
        st, body = conns[k].call("POST", "/api/v1/import", {"secrets": entries})
        if st != 200:
            raise RuntimeError(f"import answered {st}: {str(body)[:300]}")

    log(f"[{backend}] importing {SECRETS} secrets")
    secs = parallel(batches, CLIENTS, import_batch)
    res["import"] = {"secrets": SECRETS, "seconds": round(secs, 2), "per_second": round(SECRETS / secs)}
    log(f"[{backend}] import: {res['import']}")

    versioned = int(SECRETS * VERSIONED)
    if versioned and VERSIONS > 1:
        vb = (versioned + BATCH - 1) // BATCH

        def version_batch(k, j):
            lo = (j % vb) * BATCH
            hi = min(lo + BATCH, versioned)
            entries = [{"path": path_of(i), "value": value(rngs[k], i)} for i in range(lo, hi)]
            st, body = conns[k].call("POST", "/api/v1/import", {"secrets": entries})
            if st != 200:
                raise RuntimeError(f"import answered {st}: {str(body)[:300]}")

        # Rounds in order, so that no two batches of one round touch a path at once.
        t = time.perf_counter()
        for _ in range(VERSIONS - 1):
            parallel(vb, CLIENTS, version_batch)
        secs = time.perf_counter() - t
        n = versioned * (VERSIONS - 1)
        res["versions"] = {"writes": n, "seconds": round(secs, 2), "per_second": round(n / secs)}
        log(f"[{backend}] more versions: {res['versions']}")

    # --- tokens ------------------------------------------------------------------
    if TOKENS:
        # Token creation is one small durable write each: the store commits
        # concurrent ones together, so the rate is set by how many arrive at
        # once (4 connections gave about 450/s on SQLite, one fsync per 4).
        tconns = [Conn(srv.port, root) for _ in range(TOKEN_CLIENTS)]

        def make_token(k, j):
            st, body = tconns[k].call("POST", "/api/v1/auth/tokens",
                                      {"policies": ["scale"], "display_name": f"t{j}"})
            if st != 200:
                raise RuntimeError(f"token answered {st}: {body}")

        log(f"[{backend}] creating {TOKENS} tokens")
        secs = parallel(TOKENS, len(tconns), make_token)
        res["tokens"] = {"tokens": TOKENS, "seconds": round(secs, 2), "per_second": round(TOKENS / secs)}
        log(f"[{backend}] tokens: {res['tokens']}")

    res["rss_after_writes_mib"] = rss(srv.proc.pid)
    srv.stop()

    # --- audit records -------------------------------------------------------------
    audit_log = os.path.join(srv.dir, "data", "audit.log")
    have = sum(1 for _ in open(audit_log, "rb"))
    if AUDIT > have:
        log(f"[{backend}] appending {AUDIT - have} audit records with audit_fill")
        out = subprocess.run([FILL, "--config", srv.config, "--records", str(AUDIT - have)],
                             input=key, capture_output=True, text=True, check=True).stdout
        res["audit_fill"] = json.loads(out.strip().splitlines()[-1])
    res["audit_log_mib"] = round(os.path.getsize(audit_log) / 2**20)

    # --- start and unseal ------------------------------------------------------------
    started = srv.start()
    t = time.perf_counter()
    c = Conn(srv.port)
    st, _ = c.call("POST", "/api/v1/sys/unseal", {"key": key})
    assert st == 200, st
    unseal = time.perf_counter() - t
    st, _ = c.call("GET", "/api/v1/secrets/" + path_of(SECRETS - 1), token=reader)
    assert st == 200, st
    first_read = time.perf_counter() - t
    res["start"] = {"process_to_answer_s": round(started, 3), "unseal_s": round(unseal, 3),
                    "unseal_to_first_read_s": round(first_read, 3),
                    "total_s": round(started + first_read, 3)}
    log(f"[{backend}] start: {res['start']}")
    res["rss_after_unseal_mib"] = rss(srv.proc.pid)

    # --- list -------------------------------------------------------------------------
    for who, tok in (("root", root), ("policy", reader)):
        lc = Conn(srv.port, tok)
        times = []
        for _ in range(LIST_CALLS):
            t = time.perf_counter()
            st, body = lc.call("GET", "/api/v1/list/scale/f0000/")
            times.append((time.perf_counter() - t) * 1e3)
            assert st == 200 and len(body["entries"]) == min(FOLDER, SECRETS), (st, str(body)[:200])
        res[f"list_{who}_ms"] = {"first": round(times[0], 2), "median": round(statistics.median(times), 2),
                                 "p99": round(pct(times, 0.99), 2)}
        log(f"[{backend}] list as {who}: {res[f'list_{who}_ms']}")

    # --- reads under load ----------------------------------------------------------------
    w = wrk_read(srv.port, reader, path_of(SECRETS // 2))
    res["read_load"] = {"rps": round(w["rps"]), "p50_us": w["latency_us"]["p50"], "p99_us": w["latency_us"]["p99"],
                        "non_2xx": w["errors"]["status"]}
    log(f"[{backend}] reads: {res['read_load']}")
    res["rss_after_reads_mib"] = rss(srv.proc.pid)

    # --- database size ----------------------------------------------------------------------
    if backend == "sqlite":
        data = os.path.join(srv.dir, "data")
        res["db_mib"] = round(sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
                                  if f.startswith("coffer.db")) / 2**20)
    else:
        res["db_mib"] = round(pg.size(dbname) / 2**20)

    # --- audit verify -------------------------------------------------------------------------
    t = time.perf_counter()
    out = subprocess.run([COFFER, "audit", "verify", "--json"], capture_output=True, text=True,
                         env={**os.environ, "COFFER_ADDR": f"http://127.0.0.1:{srv.port}", "COFFER_TOKEN": root})
    secs = time.perf_counter() - t
    report = json.loads(out.stdout)
    records = sum(f["records"] for f in report["files"])
    res["audit_verify"] = {"ok": report["ok"], "records": records, "seconds": round(secs, 2),
                           "per_second": round(records / secs)}
    log(f"[{backend}] verify: {res['audit_verify']}")
    srv.stop()
    return res


def markdown(results, notes):
    lines = ["# coffer at scale", "",
             f"Secrets {SECRETS:,} ({VERSIONED:.0%} with {VERSIONS} versions), tokens {TOKENS:,}, "
             f"audit records {AUDIT:,}; batches of {BATCH}, {CLIENTS} import connections, values: {VALUES}.", ""]
    lines += [f"- {n}" for n in notes] + [""]
    lines.append("| measure | " + " | ".join(r["backend"] for r in results) + " |")
    lines.append("|---|" + "---:|" * len(results))

    def row(name, f):
        cells = []
        for r in results:
            try:
                cells.append(f(r))
            except KeyError:
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    row("import, secrets/s", lambda r: f"{r['import']['per_second']:,}")
    row("more versions, writes/s", lambda r: f"{r['versions']['per_second']:,}")
    row("tokens created/s", lambda r: f"{r['tokens']['per_second']:,}")
    row("start to first answer, s", lambda r: f"{r['start']['process_to_answer_s']}")
    row("unseal request, s", lambda r: f"{r['start']['unseal_s']}")
    row("start + unseal + first read, s", lambda r: f"{r['start']['total_s']}")
    row("list 1,000 (root), median / p99 ms", lambda r: f"{r['list_root_ms']['median']} / {r['list_root_ms']['p99']}")
    row("list 1,000 (policy), median / p99 ms",
        lambda r: f"{r['list_policy_ms']['median']} / {r['list_policy_ms']['p99']}")
    row("reads under load, req/s", lambda r: f"{r['read_load']['rps']:,}")
    row("reads under load, p50 / p99 µs", lambda r: f"{r['read_load']['p50_us']} / {r['read_load']['p99_us']}")
    row("RSS after writes, MiB (VmRSS / VmHWM)",
        lambda r: f"{r['rss_after_writes_mib']['VmRSS']} / {r['rss_after_writes_mib']['VmHWM']}")
    row("RSS after unseal, MiB", lambda r: f"{r['rss_after_unseal_mib']['VmRSS']}")
    row("RSS after reads, MiB (VmRSS / VmHWM)",
        lambda r: f"{r['rss_after_reads_mib']['VmRSS']} / {r['rss_after_reads_mib']['VmHWM']}")
    row("database, MiB", lambda r: f"{r['db_mib']:,}")
    row("audit log, MiB", lambda r: f"{r['audit_log_mib']:,}")
    row("audit_fill, records/s", lambda r: f"{r['audit_fill']['per_second']:,}")
    row("audit verify, records", lambda r: f"{r['audit_verify']['records']:,} ({'ok' if r['audit_verify']['ok'] else 'FAILED'})")
    row("audit verify, records/s", lambda r: f"{r['audit_verify']['per_second']:,}")
    return "\n".join(lines) + "\n"


def main():
    for b in (COFFER, FILL):
        if not os.access(b, os.X_OK):
            sys.exit(f"no binary at {b}: build it (see the usage at the top of this script)")
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian: apt-get install wrk)")
    tmp = tempfile.mkdtemp(prefix="coffer-scale-")
    pg = None
    results = []
    try:
        if "postgres" in BACKENDS:
            pg = Postgres(tmp)
        for backend in BACKENDS:
            results.append(run_backend(backend, tmp, pg))
    finally:
        if pg:
            pg.stop()
        if env("SCALE_KEEP", "0") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    notes = [f"coffer {COFFER}", f"load average before the run ended: {os.getloadavg()[0]:.1f}"]
    if pg:
        notes.append(pg.note)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT + ".json", "w") as f:
        json.dump(results, f, indent=1)
    md = markdown(results, notes)
    with open(OUT + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
