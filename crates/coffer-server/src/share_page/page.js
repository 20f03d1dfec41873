// page.js: the page a share link opens (/s/ID#KEY). It reads the key from
// the fragment, takes the fragment out of the address bar at once, and
// spends a view only when Reveal is clicked (a link preview fetching the
// page spends nothing). The value is shown with textContent only.
import { openAndDecrypt, ShareError } from "./share.js";

const $ = (id) => document.getElementById(id);
const id = location.pathname.replace(/^\/s\//, "");
const key = location.hash.replace(/^#/, "");
// The key now lives only in this script's memory.
history.replaceState(null, "", location.pathname);

function fail(message) {
  $("reveal").hidden = true;
  $("ask").hidden = true;
  $("status").textContent = message;
  $("status").hidden = false;
}

function askPassphrase(retry) {
  $("ask").hidden = false;
  $("wrong").hidden = !retry;
  $("passphrase").value = "";
  $("passphrase").focus();
  return new Promise((resolve) => {
    const done = () => {
      $("unlock").removeEventListener("click", done);
      $("passphrase").removeEventListener("keydown", onKey);
      const p = $("passphrase").value;
      $("passphrase").value = "";
      resolve(p);
    };
    const onKey = (e) => {
      if (e.key === "Enter") done();
    };
    $("unlock").addEventListener("click", done);
    $("passphrase").addEventListener("keydown", onKey);
  });
}

$("reveal").addEventListener("click", async () => {
  $("reveal").disabled = true;
  try {
    const value = await openAndDecrypt({ id, key, askPassphrase });
    $("ask").hidden = true;
    $("reveal").hidden = true;
    $("intro").textContent = "This link no longer shows the secret once you leave the page.";
    $("value").textContent = value;
    $("shown").hidden = false;
  } catch (e) {
    fail(e instanceof ShareError ? e.message : "Something went wrong; the secret was not shown.");
  }
});

$("copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("value").textContent);
    $("copied").hidden = false;
  } catch {
    // Clipboard refused: the value stays selectable.
  }
});

if (!/^[A-Za-z0-9_-]{22}$/.test(id) || !/^[A-Za-z0-9_-]{43}$/.test(key)) {
  fail("This link is incomplete or malformed.");
}
