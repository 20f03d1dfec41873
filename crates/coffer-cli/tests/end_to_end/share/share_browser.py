"""Opens and makes coffer share links in a real Chromium, with Playwright.

Driven by share.rs: reads a JSON job on stdin, prints a JSON report on
stdout. Uses the system's chromium (CHROMIUM, default `chromium`); never
downloads a browser. Every request the pages make is recorded, so the
caller can check that no key ever left the browser and no Referer was sent.
"""

import json
import shutil
import sys

from playwright.sync_api import sync_playwright

job = json.load(sys.stdin)
origin = job["origin"]
report = {"requests": []}


def watch(page):
    def on_request(req):
        report["requests"].append(
            {
                "url": req.url,
                "method": req.method,
                # An empty Referer is none: Playwright reports "" when the
                # browser sent no Referer under no-referrer.
                "referer": req.headers.get("referer") or None,
                "body": req.post_data or "",
            }
        )

    page.on("request", on_request)


def reveal(context, link, passphrases=(), wait_for=("#shown", "#status")):
    """Loads the link, checks the fragment left the address bar, clicks
    Reveal, answers passphrase prompts in order; returns what the page shows."""
    page = context.new_page()
    watch(page)
    page.goto(link)
    page.wait_for_function("() => !location.hash")
    shown = {"address": page.url}
    page.click("#reveal")
    for i, p in enumerate(passphrases):
        page.wait_for_selector("#ask:not([hidden])")
        if i > 0:
            page.wait_for_selector("#wrong:not([hidden])")
            shown["wrong_shown"] = True
        page.fill("#passphrase", p)
        page.click("#unlock")
    page.wait_for_selector(", ".join(s + ":not([hidden])" for s in wait_for))
    shown["value"] = page.text_content("#value") if page.is_visible("#shown") else None
    shown["status"] = page.text_content("#status") if page.is_visible("#status") else None
    shown["value_children"] = page.evaluate("document.getElementById('value').children.length")
    shown["xss"] = page.evaluate("window.__xss === undefined ? null : String(window.__xss)")
    page.close()
    return shown


chromium = job.get("chromium") or shutil.which("chromium") or "chromium"
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    context = browser.new_context()

    # A link preview: the page is fetched (and even rendered) but nobody
    # clicks. It must not spend the view.
    preview = context.new_page()
    watch(preview)
    preview.goto(job["plain"])
    preview.close()

    report["plain_first"] = reveal(context, job["plain"])
    report["plain_second"] = reveal(context, job["plain"])
    report["passphrase"] = reveal(context, job["passphrase_link"], passphrases=["wrong guess", job["passphrase"]])
    report["xss"] = reveal(context, job["xss"])

    # Tampering: the server (or anyone between) flips one bit of the
    # ciphertext. GCM refuses it and the page says so.
    tamper_page = context.new_page()
    watch(tamper_page)

    def flip(route):
        resp = route.fetch()
        body = resp.json()
        ct = body["ciphertext"]
        body["ciphertext"] = ct[:20] + ("A" if ct[20] != "A" else "B") + ct[21:]
        route.fulfill(response=resp, json=body)

    tamper_page.route("**/api/v1/shares/*/open", flip)
    tamper_page.goto(job["tamper"])
    tamper_page.click("#reveal")
    tamper_page.wait_for_selector("#status:not([hidden])")
    report["tamper"] = {"status": tamper_page.text_content("#status"), "value_shown": tamper_page.is_visible("#shown")}
    tamper_page.close()

    # Another link's ciphertext served under this link's id: refused too.
    swap_page = context.new_page()
    watch(swap_page)
    other = job["swap_source_id"]

    def swap(route):
        resp = swap_page.request.post(f"{origin}/api/v1/shares/{other}/open")
        route.fulfill(status=200, json=resp.json())

    swap_page.route("**/api/v1/shares/*/open", swap)
    swap_page.goto(job["swap_target"])
    swap_page.click("#reveal")
    swap_page.wait_for_selector("#status:not([hidden])")
    report["swap"] = {"status": swap_page.text_content("#status"), "value_shown": swap_page.is_visible("#shown")}
    swap_page.close()

    # Making links in the browser with the share.js module, for the CLI
    # to open.
    maker = context.new_page()
    watch(maker)
    maker.goto(f"{origin}/s/AAAAAAAAAAAAAAAAAAAAAA")
    made = maker.evaluate(
        """async ([token, value, passphrase]) => {
            const m = await import('/s/assets/share.js');
            const headers = { Authorization: 'Bearer ' + token };
            const a = await m.encryptAndCreate({ value, headers });
            const b = await m.encryptAndCreate({ value, headers, passphrase, views: 2, expiresIn: '30m' });
            return { plain: a.url, passphrase: b.url, info: b.info };
        }""",
        [job["token"], job["browser_value"], job["passphrase"]],
    )
    report["made"] = made
    maker.close()
    browser.close()

print(json.dumps(report))
