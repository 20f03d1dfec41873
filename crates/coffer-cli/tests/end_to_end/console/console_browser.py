"""Drives the web console in a real Chromium (Debian's `chromium`, through
Playwright for Python with `executable_path`: no browser download).

Run by coffer-cli's `tests/end_to_end/console.rs`, which starts the server,
makes the people and secrets, and checks afterwards what only the server
can see (audit records, what was written, which tokens remain). Passwords
and the one-time code's seed come by environment, never argv.

The administration pages: ada invites a person by keyboard and sees the
break-glass grant a person on call asked for through the pages.

Prints `console ok` when every check passed; exits non-zero otherwise.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import struct
import sys
import threading
import urllib.request

from playwright.sync_api import expect, sync_playwright

ADDR = os.environ["COFFER_ADDR"].rstrip("/")
ADA_PASSWORD = os.environ["ADA_PASSWORD"]
DEV_PASSWORD = os.environ["DEV_PASSWORD"]
ONCALL_PASSWORD = os.environ["ONCALL_PASSWORD"]
NEWBIE_PASSWORD = os.environ["NEWBIE_PASSWORD"]
TOTP_SECRET = os.environ["ADA_TOTP_SECRET"]
TOTP_STEP_AFTER = int(os.environ["ADA_TOTP_CONFIRMED_AT"]) + 30
SHOTS = os.environ.get("COFFER_SCREENSHOTS")
SEND_LINK_FILE = os.environ["COFFER_SEND_LINK_FILE"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

# Every inline script, event-handler attribute, inline style and style
# element in the document.
INLINE = """() => {
  const bad = [];
  for (const s of document.scripts) {
    if (!s.src || s.textContent.trim() !== "") bad.push("inline script");
  }
  for (const el of document.querySelectorAll("*")) {
    if (el.tagName === "STYLE") bad.push("style element");
    for (const a of el.attributes) {
      if (a.name.startsWith("on") || a.name === "style") bad.push(el.tagName + " " + a.name);
      if (/^\\s*javascript:/i.test(a.value)) bad.push(el.tagName + " javascript: URL");
    }
  }
  return bad;
}"""


def fail(what):
    print("FAILED: " + what, file=sys.stderr)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)


def totp(secret_b32, at):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", at // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000
    return "%06d" % code


violations = []


def watch(page):
    def on_console(msg):
        if msg.type == "error":
            print("console: " + msg.text, file=sys.stderr)
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            violations.append(msg.text)
    page.on("console", on_console)
    page.on("pageerror", lambda e: print("pageerror: %s" % e, file=sys.stderr))


def visit(page, path, status=200):
    """Opens a console page; checks its status, headers and that it holds
    no inline code."""
    resp = page.goto(ADDR + path)
    check(resp is not None, path + ": no response")
    check(resp.status == status, "%s: status %d, wanted %d" % (path, resp.status, status))
    headers = resp.headers
    check(headers.get("content-security-policy") == CSP, path + ": CSP " + str(headers.get("content-security-policy")))
    check(headers.get("cache-control") == "no-store", path + ": cache-control")
    check(headers.get("x-frame-options") == "DENY", path + ": x-frame-options")
    check(headers.get("referrer-policy") == "no-referrer", path + ": referrer-policy")
    no_inline(page, path)
    return resp


def no_inline(page, what):
    bad = page.evaluate(INLINE)
    check(bad == [], what + ": inline code " + repr(bad))


def shot(page, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, name + ".png"))


def click_and_wait(page, selector):
    """Clicks what navigates, and waits until the new page and its
    deferred script have loaded."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def login(page, user, password, code=""):
    visit(page, "/ui/login")
    page.fill("#user", user)
    page.fill("#password", password)
    page.fill("#totp", code)
    click_and_wait(page, "#login button[type=submit]")


def accept_invite(code, user, password):
    """Joins with an invitation code through the API, as `coffer invite
    accept` does."""
    body = json.dumps({"code": code, "user": user, "password": password}).encode()
    req = urllib.request.Request(ADDR + "/api/v1/auth/invites/accept", data=body,
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as resp:
        check(resp.status == 200, "accepting the invitation: %d" % resp.status)


def press_and_wait(page, key):
    """Presses a key that submits a form, and waits for the next page."""
    with page.expect_navigation(wait_until="load"):
        page.keyboard.press(key)


def administration(browser, page):
    """ada invites a person and sees a break-glass grant that oncall asked
    for, through the pages, with the keyboard where a person would type."""
    # Users: the nav link, then the invitation form by keyboard alone.
    visit(page, "/ui/")
    click_and_wait(page, "nav a:has-text('Users')")
    check(page.url == ADDR + "/ui/users", "users page: " + page.url)
    no_inline(page, "users")
    check(page.locator("#users a", has_text="dev").count() == 1, "dev among the users")
    page.focus("#invite-policies")
    page.keyboard.type("everything")
    page.keyboard.press("Tab")
    check(page.evaluate("document.activeElement.id") == "invite-ttl", "Tab goes to the lifetime")
    page.keyboard.type("1h")
    press_and_wait(page, "Enter")
    no_inline(page, "invitation")
    code = page.inner_text("#invite-code").strip()
    check(len(code) > 20, "an invitation code: %r" % code)
    check(code not in page.url, "the code in a URL")
    accept_invite(code, "newbie", NEWBIE_PASSWORD)
    visit(page, "/ui/users")
    check(page.locator("#users a", has_text="newbie").count() == 1, "newbie joined")
    check(code not in page.content(), "the code shown twice")
    shot(page, "users")

    # A user's page: disabling needs the name typed again.
    click_and_wait(page, "#users a:has-text('newbie')")
    no_inline(page, "user")
    page.fill("#disable-confirm", "not-newbie")
    resp = None
    with page.expect_navigation() as nav:
        page.click("#user-disable button[type=submit]")
    resp = nav.value
    check(resp.status == 400, "disable with the wrong name: %d" % resp.status)
    page.go_back()
    visit(page, "/ui/users/newbie")
    check(page.inner_text("#user-state") == "active", "newbie still active")

    # Policies read as grants.
    visit(page, "/ui/policies/dev-only")
    check(page.locator("#rules td", has_text="read, list, create, update").count() == 1,
          "dev-only's grants: " + page.inner_text("main"))
    check(page.locator("#holders a", has_text="dev").count() == 1, "dev holds dev-only")
    shot(page, "policy")

    # oncall asks for break-glass on the protected prod secret, by keyboard.
    oc_ctx = browser.new_context(viewport={"width": 1000, "height": 640})
    oc = oc_ctx.new_page()
    watch(oc)
    login(oc, "oncall", ONCALL_PASSWORD)
    visit(oc, "/ui/breakglass")
    check(oc.locator("#grants-link").count() == 0 and oc.locator("#grants-hidden").count() == 0,
          "oncall, who may not list grants, gets the form alone: " + oc.inner_text("main"))
    oc.focus("#bg-path")
    oc.keyboard.type("app/prod/DB_PASSWORD")
    oc.keyboard.press("Tab")
    oc.keyboard.type("incident 7: payments cannot reach the database")
    oc.keyboard.press("Tab")
    oc.keyboard.type("30m")
    oc.keyboard.press("Tab")
    check(oc.evaluate("document.activeElement.textContent") == "Ask for access",
          "Tab reaches the button")
    press_and_wait(oc, "Enter")
    check(oc.locator("#granted").is_visible(), "granted: " + oc.inner_text("main"))
    no_inline(oc, "break-glass granted")
    oc_ctx.close()

    # ada, who may list grants, is offered them from the form, and sees
    # the live grant, its reason and its end.
    visit(page, "/ui/breakglass")
    check(page.locator("#grants-link a[href='/ui/breakglass/grants']").count() == 1,
          "the form links ada to the grants: " + page.inner_text("main"))
    visit(page, "/ui/breakglass/grants")
    check(page.locator("#grants td", has_text="incident 7: payments cannot reach the database").count() == 1,
          "the grant in ada's list: " + page.inner_text("main"))
    shot(page, "breakglass")

    visit(page, "/ui/protected")
    check(page.locator("#protected td", has_text="app/prod/*").count() == 1, "prod is protected")
    visit(page, "/ui/rotation")
    check(page.locator("#rotation a", has_text="app/prod/DB_PASSWORD").count() == 1,
          "the expiring secret in the rotation status")
    shot(page, "rotation")


class Attacker(http.server.BaseHTTPRequestHandler):
    """A page on another origin of the same host (so the browser sends the
    SameSite=Strict cookie along: same site, another origin) that submits
    a forged form to the console as soon as it loads."""

    def do_GET(self):
        page = ("<!doctype html><title>win a prize</title>"
                "<form id=f method=post action='%s/ui/save'>"
                "<input name=csrf value=forged>"
                "<input name=path value=app/dev/FORGED>"
                "<input name=value value=forged-value>"
                "<input name=cas value=0></form>"
                "<script>document.getElementById('f').submit()</script>" % ADDR)
        body = page.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def open_link(browser, link, what):
    """Opens a share link in a fresh context (the recipient's browser) and
    clicks Reveal; returns the value shown, or None with the status text.
    Checks that the key (after #) is in no request URL or Referer."""
    key = link.split("#", 1)[1]
    ctx = browser.new_context()
    page = ctx.new_page()
    watch(page)
    seen = []
    page.on("request", lambda r: seen.append((r.url, r.headers.get("referer", ""))))
    page.goto(link)
    check("#" not in page.url, what + ": the fragment stays in the address bar")
    page.click("#reveal")
    value = None
    status = ""
    try:
        page.wait_for_selector("#shown:not([hidden]), #status:not([hidden])", timeout=20000)
    except Exception:
        fail(what + ": neither a value nor an error")
    if page.locator("#shown").is_visible():
        value = page.inner_text("#value")
    else:
        status = page.inner_text("#status")
    for url, referer in seen:
        check(key not in url and key not in referer, what + ": the key left the browser in " + url)
    ctx.close()
    return value, status


def main():
    chromium = shutil.which("chromium")
    check(chromium is not None, "Debian's chromium is not installed (apt-get install chromium)")
    attacker = http.server.HTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    attacker_url = "http://127.0.0.1:%d/" % attacker.server_address[1]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1000, "height": 640}, color_scheme="light")
        ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=ADDR)
        page = ctx.new_page()
        watch(page)

        # A page needs a session: the browser lands on the login form.
        page.goto(ADDR + "/ui/secret/app/dev/API_KEY")
        check(page.url.startswith(ADDR + "/ui/login"), "not sent to login: " + page.url)
        shot(page, "login")

        # Without the one-time code: refused, with a message naming no check.
        login(page, "ada", ADA_PASSWORD)
        check(page.locator("#login-error").is_visible(), "no error for a missing code")
        check(ctx.cookies(ADDR + "/ui/") == [] or all(c["name"] != "coffer-ui" for c in ctx.cookies()),
              "a session cookie after a failed login")

        # With it: signed in, in an HttpOnly, SameSite=Strict cookie for /ui.
        login(page, "ada", ADA_PASSWORD, totp(TOTP_SECRET, TOTP_STEP_AFTER))
        check(page.url == ADDR + "/ui/", "after login: " + page.url + ": " + page.inner_text("main"))
        cookies = [c for c in ctx.cookies() if c["name"] == "coffer-ui"]
        check(len(cookies) == 1, "one session cookie: %r" % [c["name"] for c in ctx.cookies()])
        c = cookies[0]
        check(c["httpOnly"] and c["sameSite"] == "Strict" and c["path"] == "/ui", "cookie attributes %r" % c)
        check(page.evaluate("document.cookie") == "", "a script can read the session cookie")

        # The tree, and its filter.
        visit(page, "/ui/")
        check(page.locator("#tree a", has_text="app/dev/API_KEY").count() == 1, "API_KEY in the tree")
        check(page.locator("#tree a", has_text="app/prod/DB_PASSWORD").count() == 1, "DB_PASSWORD in the tree")
        shot(page, "tree")
        page.fill("#q", "prod")
        check(page.locator("#tree a:visible").count() == 1, "the filter leaves one secret")
        page.fill("#q", "")

        # Keyboard: on a fresh page the skip link is the first stop.
        visit(page, "/ui/")
        page.keyboard.press("Tab")
        check(page.evaluate("document.activeElement.className") == "skip", "the skip link comes first")

        # A secret's page; reveal, copy, hide.
        click_and_wait(page, "#tree a:has-text('app/dev/API_KEY')")
        check(page.url == ADDR + "/ui/secret/app/dev/API_KEY", "secret page: " + page.url)
        no_inline(page, "secret")
        check(page.locator("#value").is_hidden(), "the value is hidden at first")
        shot(page, "secret")
        page.click("#reveal")
        page.wait_for_selector("#value:not([hidden])")
        check(page.locator("#value").inner_text() == "dev-value-1", "revealed value")
        page.click("#copy")
        # Waits go through locators: a string for wait_for_function is
        # evaluated with eval, which the console's CSP rightly refuses.
        expect(page.locator("#reveal-status")).to_have_text("Copied.")
        check(page.evaluate("navigator.clipboard.readText()") == "dev-value-1", "copied value")
        page.click("#hide")
        check(page.locator("#value").is_hidden() and page.locator("#value").inner_text() == "",
              "hidden again")

        # Edit: a new version, with the server's strength estimate.
        click_and_wait(page, "text=Edit (new version)")
        no_inline(page, "edit")
        check(page.get_attribute("#value", "class") == "masked", "the value field is masked")
        strength = []
        page.on("response", lambda r: strength.append(r.status) if r.url.endswith("/ui/strength") else None)
        page.fill("#value", "dev-value-2")
        try:
            expect(page.locator("#strength")).to_contain_text("Estimated strength", timeout=10000)
        except AssertionError:
            fail("no strength estimate: answers %r" % strength)
        click_and_wait(page, "#edit button[type=submit]")
        check(page.url == ADDR + "/ui/secret/app/dev/API_KEY", "after saving: " + page.url)
        check(page.locator("#current-version").inner_text() == "2", "a new version")
        check("dev-value-2" not in page.url, "the value in a URL")

        # Roll back to version 1 from the history, through the confirmation.
        click_and_wait(page, "#history a.rollback:has-text('Roll back to version 1')")
        check(page.url == ADDR + "/ui/rollback/app/dev/API_KEY?version=1", "rollback form: " + page.url)
        no_inline(page, "rollback form")
        check(page.locator("#current-version").count() == 0, "the confirmation changes nothing yet")
        shot(page, "rollback")
        click_and_wait(page, "#rollback-confirm")
        check(page.url == ADDR + "/ui/secret/app/dev/API_KEY", "after rollback: " + page.url)
        check(page.locator("#current-version").inner_text() == "3", "rollback wrote version 3")

        # Share the secret: the link opens once in a browser, then not again.
        page.click("#share")
        page.wait_for_selector("#share-result:not([hidden])", timeout=20000)
        link = page.input_value("#share-link")
        check(link.startswith(ADDR + "/s/") and "#" in link, "a share link: " + link)
        key = link.split("#", 1)[1]
        page.click("#share-copy")
        expect(page.locator("#share-status")).to_have_text("Link copied.")
        check(page.evaluate("navigator.clipboard.readText()") == link, "the copied link")
        value, status = open_link(browser, link, "first open")
        check(value == "dev-value-1", "the shared value: %r %r" % (value, status))
        value, status = open_link(browser, link, "second open")
        check(value is None and status != "", "a second open: %r" % value)

        # Send a secret: the pasted text becomes a link (opened by the CLI).
        visit(page, "/ui/send")
        page.fill("#send-value", "sent from the console")
        shot(page, "send")
        page.click("#send")
        page.wait_for_selector("#share-result:not([hidden])", timeout=20000)
        sent = page.input_value("#share-link")
        check(sent.startswith(ADDR + "/s/") and sent.split("#", 1)[1] != key, "a send link: " + sent)
        check(page.input_value("#send-value") == "", "the text is cleared")
        with open(SEND_LINK_FILE, "w") as f:
            f.write(sent)

        # Compare two environments: names only.
        visit(page, "/ui/env?app=app&a=dev&b=prod")
        check("API_KEY" in page.inner_text("#only-a"), "API_KEY only in dev")
        check("DB_PASSWORD" in page.inner_text("#only-b"), "DB_PASSWORD only in prod")
        check("dev-value" not in page.content() and "prod-value" not in page.content(), "a value on the env page")
        shot(page, "env")

        # The console's own 404 is its page, with its headers.
        visit(page, "/ui/no/such/page", status=404)

        # The audit log shows the reveal.
        visit(page, "/ui/audit?path=app/dev/API_KEY")
        check(page.locator("#records td", has_text="ui.reveal").count() >= 1, "the reveal in the audit page")
        shot(page, "audit")

        # Who read it.
        visit(page, "/ui/readers/app/dev/API_KEY")
        check(page.locator("#readers td", has_text="ada").count() >= 1, "ada among the readers")

        administration(browser, page)

        # A forged form from another origin of this host: the browser sends
        # the cookie (same site), the console refuses (Origin, token).
        resp = None
        with page.expect_navigation(url=ADDR + "/ui/save") as nav:
            page.goto(attacker_url)
        resp = nav.value
        check(resp.status == 403, "the forged form got %d" % resp.status)

        # Logout revokes the token; the pages are closed again.
        visit(page, "/ui/")
        click_and_wait(page, "header form button[type=submit]")
        check(page.url == ADDR + "/ui/login", "after logout: " + page.url)
        page.goto(ADDR + "/ui/")
        check(page.url.startswith(ADDR + "/ui/login"), "a page after logout: " + page.url)

        # A person limited to app/dev/ sees only that, and is refused the rest.
        dev_ctx = browser.new_context(viewport={"width": 1000, "height": 640})
        dev = dev_ctx.new_page()
        watch(dev)
        login(dev, "dev", DEV_PASSWORD)
        check(dev.url == ADDR + "/ui/", "dev after login: " + dev.url)
        visit(dev, "/ui/", status=403)
        visit(dev, "/ui/?prefix=app/dev/")
        check(dev.locator("#tree a").count() == 1 and "app/dev/API_KEY" in dev.inner_text("#tree"),
              "dev's tree: " + dev.inner_text("main"))
        check("prod" not in dev.content(), "prod in dev's tree")
        visit(dev, "/ui/secret/app/prod/DB_PASSWORD", status=403)
        visit(dev, "/ui/audit", status=403)
        dev_ctx.close()

        check(violations == [], "CSP violations: %r" % violations)
        browser.close()
    attacker.shutdown()
    print("console ok")


if __name__ == "__main__":
    main()
