#!/usr/bin/env python3
"""Fault injection: the audit log and the SQLite store on a disk that fails.

Needs root (loop devices, mount). For each fault, a fresh ext4 file system
on a loop device holds the server's data directory (coffer.db and
audit.log). The loop device's image is a sparse file on a small tmpfs, so
that the block device itself can be made to fail. Writers store secrets
and record every write the server acknowledged (2xx); then the fault is
injected for a few seconds, cleared, and the server is stopped, restarted
and unsealed. Faults:

  disk-full   the data file system fills up (a filler file takes every
              free block); cleared by removing the filler.
  read-only   the data file system turns read-only under the server. A
              `mount -o remount,ro` is refused (EBUSY) while the server
              holds its files open for writing, so this is done the way it
              happens in production: the file system is mounted with
              errors=remount-ro and the device fails writes for a moment
              (as for io-error), after which the kernel remounts it
              read-only; cleared by `mount -o remount,rw` or, when the
              kernel refuses that, by the e2fsck path below.
  io-error    the tmpfs under the loop device fills up, so the block
              device fails writes (the kernel logs I/O errors; ext4 sees
              them at writeback and fsync); cleared by freeing the tmpfs.
              ext4 may abort its journal on such errors, after which the
              file system stays read-only until it is unmounted and
              checked: then the server is stopped, the file system
              repaired with e2fsck and mounted again.

Checks, for every fault:

  * fail closed: no write acknowledged during the fault is missing after
    the restart, and every acknowledged write has its audit record;
  * nothing acknowledged is lost: after the restart every acknowledged
    value reads back at its version, and `audit verify` passes;
  * resumption: whether writes succeed again after the fault clears
    without a restart (and how long that took), and after a restart;
  * the alert: /sys/health says audit_available false and the metric
    coffer_audit_available is 0 while the audit log cannot be written,
    and the server log has an error event for it.

Usage: sudo bench/faults/faults.py --coffer target/debug/coffer [--fault disk-full]...
Prints one line per check and a summary; exits 1 if any check failed.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crash"))
from crash import Client, free_port, wait_up  # noqa: E402

FAULTS = ["disk-full", "read-only", "io-error"]


def sh(*cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.returncode} {r.stderr.strip()}")
    return r


class Disk:
    """An ext4 file system on a loop device whose image lives on a tmpfs."""

    def __init__(self, work, outer_mb=160, image_mb=256):
        self.outer = os.path.join(work, "outer")
        self.mnt = os.path.join(work, "data")
        os.makedirs(self.outer)
        os.makedirs(self.mnt)
        sh("mount", "-t", "tmpfs", "-o", f"size={outer_mb}m", "tmpfs", self.outer)
        self.image = os.path.join(self.outer, "disk.img")
        sh("truncate", "-s", f"{image_mb}M", self.image)
        sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", self.image)
        self.loop = sh("losetup", "-f", "--show", self.image).stdout.strip()
        self.mount()

    def mount(self, options="errors=remount-ro"):
        sh("mount", "-o", options, self.loop, self.mnt)

    def read_only(self):
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if parts[1] == self.mnt:
                    return parts[3].split(",")[0] == "ro"
        return False

    def fill(self, where):
        """Takes every free block of `where` with a filler file."""
        path = os.path.join(where, "filler")
        with open(path, "wb") as f:
            chunk = b"\0" * (1 << 20)
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                pass
        # Small pieces too, so no block is left.
        try:
            with open(path + "2", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass

    def unfill(self, where):
        for name in ("filler", "filler2"):
            try:
                os.unlink(os.path.join(where, name))
            except FileNotFoundError:
                pass

    def repair(self):
        """Unmount, e2fsck, mount again (after ext4 aborted on I/O errors)."""
        sh("umount", self.mnt, check=False)
        r = sh("e2fsck", "-f", "-y", self.loop, check=False)
        self.mount()
        return r.returncode

    def writable(self):
        try:
            with open(os.path.join(self.mnt, ".probe"), "w") as f:
                f.write("x")
                f.flush()
                os.fsync(f.fileno())
            os.unlink(os.path.join(self.mnt, ".probe"))
            return True
        except OSError:
            return False

    def close(self):
        sh("umount", self.mnt, check=False)
        sh("losetup", "-d", self.loop, check=False)
        sh("umount", self.outer, check=False)


class Load:
    """Writers that store secrets and note what was acknowledged."""

    def __init__(self, client, threads=4):
        self.client = client
        self.lock = threading.Lock()
        self.acked = {}  # (path, version) -> (value, time)
        self.statuses = []  # (time, status)
        self.stop = threading.Event()
        self.n = 0
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def run(self, i):
        while not self.stop.is_set():
            with self.lock:
                self.n += 1
                n = self.n
            path = f"faults/w{i}/k{n % 50}"
            value = f"v{n}-{os.urandom(8).hex()}"
            try:
                st, body = self.client.call("PUT", "/api/v1/secrets/" + path, {"value": value}, timeout=15)
            except OSError:
                st, body = -1, None
            now = time.time()
            with self.lock:
                self.statuses.append((now, st))
                if 200 <= st < 300:
                    self.acked[(path, body["version"])] = (value, now)
            if st != 200:
                time.sleep(0.05)

    def halt(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def between(self, a, b):
        with self.lock:
            return [s for (t, s) in self.statuses if a <= t < b]


def metric(base, name):
    """One gauge from the unauthenticated loopback /metrics listener (the
    authenticated /api/v1/sys/metrics is itself refused while no audit
    sink works)."""
    try:
        import urllib.request

        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except Exception as e:  # noqa: BLE001 - a failing server answers anything
        return f"unavailable ({type(e).__name__}: {getattr(e, 'code', '')})"
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return m.group(1) if m else "absent"


def summarize(statuses):
    out = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return dict(sorted(out.items()))


def run_fault(fault, coffer, results, fail, fsync):
    work = tempfile.mkdtemp(prefix=f"coffer-faults-{fault}-")
    # For io-error the image is larger than the tmpfs under it, so the
    # device fails before its file system is full; otherwise the other way.
    disk = Disk(work, outer_mb=96, image_mb=256) if fault != "disk-full" else Disk(work, outer_mb=160, image_mb=64)
    data = disk.mnt
    port = free_port()
    mport = free_port()
    config = os.path.join(work, "coffer.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\ndata_dir = "{data}"\nmetrics_listen = "127.0.0.1:{mport}"\n')
        f.write(f'[audit]\nfsync = "{fsync}"\n')
    logpath = os.path.join(work, "server.log")
    log = open(logpath, "ab")
    client = Client(f"http://127.0.0.1:{port}")
    proc = subprocess.Popen([coffer, "server", "--config", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    r = {"fault": fault, "fsync": fsync}
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
        t_fault = time.time()
        log_mark = os.path.getsize(logpath)
        if fault == "disk-full":
            disk.fill(disk.mnt)
        elif fault == "read-only":
            r["userspace_remount_ro"] = sh("mount", "-o", "remount,ro", disk.mnt, check=False).stderr.strip()[:120]
            disk.fill(disk.outer)
            end = time.time() + 10
            while not disk.read_only() and time.time() < end:
                time.sleep(0.1)
            disk.unfill(disk.outer)
            r["kernel_remounted_ro"] = disk.read_only()
        elif fault == "io-error":
            disk.fill(disk.outer)
        time.sleep(4)
        st, health = client.call("GET", "/api/v1/sys/health", timeout=10)
        r["health_during"] = (st, (health or {}).get("audit_available"))
        r["metric_during"] = metric(f"http://127.0.0.1:{mport}", "coffer_audit_available")
        t_clear = time.time()
        if fault == "disk-full":
            disk.unfill(disk.mnt)
        elif fault == "read-only":
            rw = sh("mount", "-o", "remount,rw", disk.mnt, check=False)
            r["remount_rw"] = rw.returncode == 0 or rw.stderr.strip()[:120]
        elif fault == "io-error":
            disk.unfill(disk.outer)
        r["during"] = summarize(load.between(t_fault + 0.5, t_clear))
        # Service resumes without a restart?
        resumed = None
        end = time.time() + 15
        while time.time() < end:
            time.sleep(0.25)
            ok = [s for s in load.between(time.time() - 0.5, time.time()) if s == 200]
            if ok:
                resumed = round(time.time() - t_clear, 2)
                break
        r["resumed_after_s"] = resumed
        r["fs_writable_after_clear"] = disk.writable()
        load.halt()
        st, health = client.call("GET", "/api/v1/sys/health", timeout=10)
        r["health_after"] = (st, (health or {}).get("audit_available"))
        with open(logpath, "rb") as f:
            f.seek(log_mark)
            tail = f.read().decode(errors="replace")
        r["log_errors"] = sorted(
            set(
                re.sub(r"\x1b\[[0-9;]*m", "", m).strip()[:140]
                for m in re.findall(r"(?:ERROR|WARN)[^\n]*", tail)
            )
        )[:8]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not disk.writable():
            r["e2fsck"] = disk.repair()
        proc = subprocess.Popen(
            [coffer, "server", "--config", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        wait_up(client, proc)
        st, _ = client.call("POST", "/api/v1/sys/unseal", {"key": key})
        if st != 200:
            fail(f"{fault}: unseal after restart answered {st}")
        # Every acknowledged value, at its version.
        lost = 0
        for (path, version), (value, _) in sorted(load.acked.items()):
            st, body = client.call("GET", f"/api/v1/secrets/{path}?version={version}")
            if st != 200 or body.get("value") != value:
                lost += 1
                if lost <= 5:
                    fail(f"{fault}: acknowledged {path} v{version} reads {st} {body and body.get('error')}")
        r["acknowledged"] = len(load.acked)
        r["acknowledged_during_fault"] = sum(1 for (_, t) in load.acked.values() if t_fault <= t < t_clear)
        r["lost"] = lost
        # Every acknowledged write has its audit record.
        st, body = client.call("POST", "/api/v1/sys/audit/verify", {"rotated": True}, timeout=120)
        r["audit_verify"] = (st, body.get("ok") if body else None)
        if st != 200 or not body.get("ok"):
            fail(f"{fault}: audit verify: {st} {json.dumps(body)[:600]}")
        audited = set()
        with open(os.path.join(data, "audit.log"), "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("op") == "secret.write" and rec.get("outcome") == "ok":
                    audited.add((rec.get("path"), rec.get("version")))
        missing = [k for k in load.acked if k not in audited]
        r["acknowledged_without_audit_record"] = len(missing)
        if missing:
            fail(f"{fault}: {len(missing)} acknowledged writes have no audit record, e.g. {missing[:3]}")
        # And after the restart, writes work.
        st, _ = client.call("PUT", "/api/v1/secrets/faults/after", {"value": "after"})
        r["write_after_restart"] = st
        if st != 200:
            fail(f"{fault}: a write after the restart answered {st}")
        if lost:
            fail(f"{fault}: {lost} acknowledged writes lost")
        if r["during"].get(200) and fault != "io-error":
            # A 2xx during the fault is fine only if it was durable: checked above.
            pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        disk.close()
        r["work"] = work
    results.append(r)
    print(json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coffer", required=True)
    ap.add_argument("--fault", action="append", choices=FAULTS)
    ap.add_argument("--audit-fsync", default="interval", choices=["interval", "batch"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("faults.py needs root (loop devices and mount)")
    failures = []

    def fail(msg):
        failures.append(msg)
        print("FAIL:", msg, flush=True)

    results = []
    for fault in args.fault or FAULTS:
        try:
            run_fault(fault, os.path.abspath(args.coffer), results, fail, args.audit_fsync)
        except Exception as e:  # noqa: BLE001 - report and go on with the next fault
            import traceback

            traceback.print_exc()
            fail(f"{fault}: {type(e).__name__}: {e}")
    print(f"faults: {len(results)} faults run, {len(failures)} failed checks")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
