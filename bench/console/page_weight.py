"""Page weight and speed of the web console, in Debian's Chromium through
Playwright for Python (as the console's browser test drives it).

Starts `coffer server --dev` on a free loopback port with a fresh data
directory, loads BENCH_SECRETS secrets (10,000 by default) through the
import API in batches, invites a person who may do everything, logs in
through the login form, then for each console page records the bytes
transferred (the navigation and every resource it loaded, from the
Resource Timing API's `transferSize`, and the documents' decoded size) and,
over BENCH_RUNS loads (7 by default), the median of `domInteractive` and
`loadEventEnd` from the Navigation Timing API.

    python3 bench/console/page_weight.py            # builds nothing
    COFFER_BIN=target/release/coffer BENCH_RUNS=9 python3 bench/console/page_weight.py

Prints a Markdown table for BENCHMARKS.md.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

BIN = os.environ.get("COFFER_BIN", "target/release/coffer")
SECRETS = int(os.environ.get("BENCH_SECRETS", "10000"))
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
BATCH = 500
PASSWORD = "bench console horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(addr, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(addr + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read()
        return json.loads(text) if text else None


def value_of(path):
    """The same value in both environments, except for every tenth name."""
    app, env, name = path.split("/")
    n = int(name.rsplit("_", 1)[1])
    return "bench-%s-%d" % (app, n) if n % 10 else "bench-%s-%s-%d" % (app, env, n)


def wait_up(addr):
    for _ in range(300):
        try:
            api(addr, "GET", "/api/v1/sys/health")
            return
        except Exception:
            time.sleep(0.1)
    sys.exit("the server did not start")


def measure(page, url):
    page.goto(url, wait_until="load")
    nav = page.evaluate("""() => {
      const n = performance.getEntriesByType("navigation")[0];
      const res = performance.getEntriesByType("resource");
      return {
        interactive: n.domInteractive,
        load: n.loadEventEnd,
        doc_transfer: n.transferSize,
        doc_decoded: n.decodedBodySize,
        res_transfer: res.reduce((a, r) => a + r.transferSize, 0),
        res_count: res.length,
        items: document.querySelectorAll("main li, main tbody tr").length,
      };
    }""")
    return nav


def main():
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is needed (apt-get install chromium)")
    if not os.path.exists(BIN):
        sys.exit("no coffer binary at %s (set COFFER_BIN)" % BIN)
    data = tempfile.mkdtemp(prefix="coffer-console-bench-")
    port = free_port()
    addr = "http://127.0.0.1:%d" % port
    server = subprocess.Popen(
        [BIN, "server", "--dev", "--data-dir", data, "--listen", "127.0.0.1:%d" % port],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(addr)
        root = open(os.path.join(data, "root-token")).read().strip()
        api(addr, "PUT", "/api/v1/sys/policies/everything", root,
            {"policy": 'path "*" { capabilities = ["read", "list", "create", "update", "delete", "rotate", "admin"] }'})
        code = api(addr, "POST", "/api/v1/auth/invites", root, {"policies": ["everything"]})["code"]
        api(addr, "POST", "/api/v1/auth/invites/accept", None,
            {"code": code, "user": "bench", "password": PASSWORD})
        started = time.monotonic()
        envs = ["dev", "prod"]
        paths = []
        # 50 apps, two environments each, the same 100 names in both (so
        # that the comparison has pairs; every tenth differs).
        for i in range(SECRETS):
            paths.append("app%02d/%s/SECRET_%05d" % (i % 50, envs[(i // 50) % 2], (i // 100) * 100 + (i % 50)))
        for b in range(0, len(paths), BATCH):
            api(addr, "POST", "/api/v1/import", root,
                {"secrets": [{"path": p, "value": value_of(p)} for p in paths[b:b + BATCH]]})
        loaded = time.monotonic() - started
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(addr + "/ui/login")
            page.fill("#user", "bench")
            page.fill("#password", PASSWORD)
            with page.expect_navigation(wait_until="load"):
                page.click("#login button[type=submit]")
            if page.url != addr + "/ui/":
                sys.exit("login failed: " + page.url)
            pages = [
                ("tree, all 10,000", "/ui/"),
                ("tree, one folder", "/ui/?prefix=app07/dev/"),
                ("tree, a filter matching nothing", "/ui/?q=SECRET_0999"),
                ("secret", "/ui/secret/" + paths[7]),
                ("edit", "/ui/edit/" + paths[7]),
                ("compare environments (100 names each)", "/ui/env?app=app07&a=dev&b=prod"),
                ("send a secret", "/ui/send"),
                ("audit log", "/ui/audit"),
            ]
            rows = []
            for name, path in pages:
                runs = [measure(page, addr + path) for _ in range(RUNS)]
                first = runs[0]
                rows.append((
                    name, path,
                    first["doc_transfer"] + first["res_transfer"],
                    first["doc_decoded"], first["res_count"], first["items"],
                    statistics.median(r["interactive"] for r in runs),
                    statistics.median(r["load"] for r in runs),
                ))
            browser.close()
        print("Loaded %d secrets through /api/v1/import in %.1f s (batches of %d)." % (SECRETS, loaded, BATCH))
        print()
        print("| page | URL | rows shown | transferred (bytes) | HTML (bytes) | resources | domInteractive median (ms) | load median (ms) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for name, path, transfer, html, count, items, inter, load in rows:
            print("| %s | `%s` | %d | %d | %d | %d | %.1f | %.1f |" % (name, path, items, transfer, html, count, inter, load))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
