// The web console's one script, loaded from this server only (the page's
// Content-Security-Policy allows no inline script). It reveals a value on
// request (a POST carrying the session's form token; hidden again after 30
// seconds), copies it with the Clipboard API, shows the server's strength
// estimate of a typed value (sent in a POST body, never a URL), and
// filters the tree as one types.
"use strict";

(function () {
  const HIDE_AFTER_MS = 30000;

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "content-type": "application/json", "x-coffer-csrf": csrf },
      body: JSON.stringify(body),
    });
  }

  function setupReveal() {
    const reveal = document.getElementById("reveal");
    if (!reveal) return;
    const out = document.getElementById("value");
    const copy = document.getElementById("copy");
    const hide = document.getElementById("hide");
    const status = document.getElementById("reveal-status");
    let timer = null;
    let text = "";

    function conceal() {
      text = "";
      out.textContent = "";
      out.hidden = true;
      copy.hidden = true;
      hide.hidden = true;
      reveal.hidden = false;
      if (timer) clearTimeout(timer);
      timer = null;
    }

    reveal.addEventListener("click", async function () {
      status.textContent = "";
      let resp;
      try {
        resp = await post("/ui/reveal/" + reveal.dataset.path, reveal.dataset.csrf, {});
      } catch (e) {
        status.textContent = "The server could not be reached.";
        return;
      }
      const body = await resp.json().catch(function () { return {}; });
      if (!resp.ok) {
        const msg = body && body.error && body.error.message;
        status.textContent = msg ? "Refused: " + msg : "Refused (" + resp.status + ").";
        return;
      }
      text = body.fields !== undefined ? JSON.stringify(body.fields, null, 2) : body.value;
      out.textContent = text;
      out.hidden = false;
      copy.hidden = false;
      hide.hidden = false;
      reveal.hidden = true;
      status.textContent = "Version " + body.version + " shown; hidden again in 30 seconds.";
      timer = setTimeout(function () {
        conceal();
        status.textContent = "Hidden again.";
      }, HIDE_AFTER_MS);
    });

    hide.addEventListener("click", function () {
      conceal();
      reveal.focus();
    });

    copy.addEventListener("click", async function () {
      try {
        await navigator.clipboard.writeText(text);
        status.textContent = "Copied.";
      } catch (e) {
        status.textContent = "The browser did not allow copying.";
      }
    });
  }

  function setupEdit() {
    const value = document.getElementById("value");
    if (!value || value.tagName !== "TEXTAREA") return;
    const show = document.getElementById("show-value");
    const meter = document.getElementById("strength");
    show.addEventListener("change", function () {
      value.classList.toggle("masked", !show.checked);
    });
    let pending = null;
    value.addEventListener("input", function () {
      if (pending) clearTimeout(pending);
      pending = setTimeout(async function () {
        if (value.value === "") {
          meter.textContent = "";
          return;
        }
        try {
          const resp = await post("/ui/strength", value.dataset.csrf, { value: value.value });
          const body = await resp.json();
          if (!resp.ok) {
            meter.textContent = "";
            return;
          }
          let msg = "Estimated strength: " + body.bits + " bits" + (body.weak ? " (weak)" : "");
          if (body.reasons.length) msg += ": " + body.reasons.join("; ");
          meter.textContent = msg;
        } catch (e) {
          meter.textContent = "";
        }
      }, 300);
    });
  }

  function setupFilter() {
    const q = document.getElementById("q");
    const tree = document.getElementById("tree");
    if (!q || !tree) return;
    q.addEventListener("input", function () {
      const needle = q.value.toLowerCase();
      for (const li of tree.children) {
        li.hidden = needle !== "" && !li.textContent.toLowerCase().includes(needle);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupReveal();
    setupEdit();
    setupFilter();
  });
})();
