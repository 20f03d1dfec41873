// send.js: share links from the console (a module; the page's CSP allows
// no inline script). On a secret's page, "Share" reads the current value
// (POST /ui/reveal, audited as a read), seals it here with the share
// page's own module and posts only the sealed bytes, the path and the
// version to /ui/shares. On the "send a secret" page it seals the pasted
// text. The key is only ever in the link shown (its fragment).
import { encryptAndCreate } from "/s/assets/share.js";

const $ = (id) => document.getElementById(id);

function showLink(url) {
  $("share-link").value = url;
  $("share-result").hidden = false;
  $("share-status").textContent = "Link created. It is shown only here: copy it now.";
  $("share-link").select();
}

function failed(e) {
  $("share-status").textContent = "The link was not created: " + (e && e.message ? e.message : "error");
}

async function shareStored(button) {
  const csrf = button.dataset.csrf;
  const href = button.dataset.path;
  $("share-status").textContent = "";
  const resp = await fetch("/ui/reveal/" + href, {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "content-type": "application/json", "x-coffer-csrf": csrf },
    body: "{}",
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const msg = body && body.error && body.error.message;
    throw new Error(msg || "refused (" + resp.status + ")");
  }
  const value = body.fields !== undefined ? JSON.stringify(body.fields) : body.value;
  const { url } = await encryptAndCreate({
    value,
    headers: { "x-coffer-csrf": csrf },
    endpoint: "/ui/shares",
    path: decodeURIComponent(href),
    version: body.version,
  });
  showLink(url);
}

function setup() {
  const share = $("share");
  if (share) {
    share.addEventListener("click", () => {
      share.disabled = true;
      shareStored(share).catch(failed).finally(() => { share.disabled = false; });
    });
  }
  const form = $("send-form");
  if (form) {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("send-value").value;
      if (!value) return;
      $("send").disabled = true;
      encryptAndCreate({
        value,
        expiresIn: $("send-expires").value,
        views: Number($("send-views").value) || 1,
        passphrase: $("send-passphrase").value || undefined,
        headers: { "x-coffer-csrf": form.dataset.csrf },
        endpoint: "/ui/shares",
      })
        .then(({ url }) => {
          $("send-value").value = "";
          $("send-passphrase").value = "";
          showLink(url);
        })
        .catch(failed)
        .finally(() => { $("send").disabled = false; });
    });
  }
  const copy = $("share-copy");
  if (copy) {
    copy.addEventListener("click", () => {
      navigator.clipboard.writeText($("share-link").value).then(
        () => { $("share-status").textContent = "Link copied."; },
        () => { $("share-status").textContent = "Copy failed: select the link and copy it."; },
      );
    });
  }
}

setup();
