// share.js: one-time share links, sealed and opened in the browser.
//
// The same construction as coffer's Rust side (coffer_crypto::share); the
// server stores only the sealed bytes and never sees the key, which lives
// in the link's fragment (`https://HOST/s/ID#KEY`):
//
//   ID   128 random bits, base64url (22 characters), chosen here
//   KEY  256 random bits, base64url (43 characters)
//   content key = HKDF-SHA256(KEY, info "coffer-share-v1/key"), or with a
//     passphrase HKDF-SHA256(KEY || PBKDF2-HMAC-SHA256(passphrase, salt,
//     iterations, 256 bits), salt, info "coffer-share-v1/passphrase")
//   sealed = nonce(12) || AES-256-GCM(content key, nonce, value,
//     associated data "coffer-share-v1\nID\nnone" or "...\npassphrase")
//
// Exports:
//   encryptAndCreate({value, expiresIn, views, passphrase, headers, origin,
//                     endpoint, path, version})
//     seals `value` (a string), POSTs it to /api/v1/shares (or `endpoint`:
//     the console's /ui/shares) with `headers` (the caller's credentials:
//     {Authorization: "Bearer ..."} or the console's form token) and
//     resolves to {url, id, info}. `path` and `version` name the stored
//     secret shared.
//   openAndDecrypt({id, key, askPassphrase, origin})
//     spends one view (POST /api/v1/shares/ID/open) and resolves to the
//     value. `askPassphrase(retry)` is awaited when the link needs one; it
//     is asked again (retry = true) after a wrong passphrase, without
//     spending another view; resolving to null gives up.
//   parseLink(href) -> {id, key} or null
//   ShareError: .kind is "gone" (unknown, used up or expired; which is not
//     said), "decrypt" (wrong key or passphrase, or altered data),
//     "malformed", "rate_limited", "cancelled" or "server".
//
// Values are only ever returned as strings: callers must render them with
// textContent (never innerHTML).

const VERSION = "coffer-share-v1";
export const PBKDF2_ITERATIONS = 600000;
const MIN_ITERATIONS = 600000;
const MAX_ITERATIONS = 10000000;
const enc = new TextEncoder();

export class ShareError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "ShareError";
    this.kind = kind;
  }
}

export function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64url(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new ShareError("malformed", "malformed share data");
  }
  const pad = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const bin = atob(pad);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function random(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

export function isId(id) {
  return typeof id === "string" && /^[A-Za-z0-9_-]{22}$/.test(id) && b64url(unb64url(id)) === id;
}

export function parseLink(href) {
  let u;
  try {
    u = new URL(href);
  } catch {
    return null;
  }
  const m = /^\/s\/([A-Za-z0-9_-]{22})$/.exec(u.pathname);
  const key = u.hash.replace(/^#/, "");
  if (!m || !isId(m[1]) || !/^[A-Za-z0-9_-]{43}$/.test(key)) return null;
  return { id: m[1], key };
}

function associatedData(id, passphrase) {
  return enc.encode(`${VERSION}\n${id}\n${passphrase ? "passphrase" : "none"}`);
}

async function contentKey(rawKey, passphrase, salt, iterations) {
  let ikm = rawKey;
  let hkdfSalt = new Uint8Array(0);
  let info = `${VERSION}/key`;
  if (passphrase !== null) {
    if (!(iterations >= MIN_ITERATIONS && iterations <= MAX_ITERATIONS) || salt.length !== 16) {
      throw new ShareError("malformed", "malformed share data");
    }
    const pk = await crypto.subtle.importKey("raw", enc.encode(passphrase), "PBKDF2", false, ["deriveBits"]);
    const p = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, pk, 256),
    );
    ikm = new Uint8Array(64);
    ikm.set(rawKey, 0);
    ikm.set(p, 32);
    p.fill(0);
    hkdfSalt = salt;
    info = `${VERSION}/passphrase`;
  }
  const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveKey"]);
  if (ikm !== rawKey) ikm.fill(0);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: hkdfSalt, info: enc.encode(info) },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

async function errorOf(resp) {
  if (resp.status === 404) return new ShareError("gone", "This link is unknown, used up or expired.");
  if (resp.status === 429) return new ShareError("rate_limited", "Too many attempts from this address; try again later.");
  let message = `the server answered ${resp.status}`;
  try {
    const body = await resp.json();
    if (body && body.error && typeof body.error.message === "string") message = body.error.message;
  } catch {
    // not JSON: keep the status
  }
  return new ShareError("server", message);
}

export async function encryptAndCreate({ value, expiresIn, views, passphrase, headers, origin, endpoint, path, version } = {}) {
  if (typeof value !== "string") throw new ShareError("malformed", "the value must be a string");
  const base = origin || location.origin;
  const id = b64url(random(16));
  const rawKey = random(32);
  const body = { id };
  let salt = null;
  if (passphrase) {
    salt = random(16);
    body.salt = b64url(salt);
    body.iterations = PBKDF2_ITERATIONS;
  }
  const key = await contentKey(rawKey, passphrase ? passphrase : null, salt, PBKDF2_ITERATIONS);
  const nonce = random(12);
  const plain = enc.encode(value);
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: associatedData(id, !!passphrase) }, key, plain),
  );
  plain.fill(0);
  const sealed = new Uint8Array(12 + ct.length);
  sealed.set(nonce, 0);
  sealed.set(ct, 12);
  body.ciphertext = b64url(sealed);
  if (expiresIn) body.expires_in = expiresIn;
  if (views) body.views = views;
  if (path !== undefined && version !== undefined) {
    body.path = path;
    body.version = version;
  }
  const resp = await fetch(`${base}${endpoint || "/api/v1/shares"}`, {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
    body: JSON.stringify(body),
    credentials: "same-origin",
    referrerPolicy: "no-referrer",
  });
  if (!resp.ok) throw await errorOf(resp);
  const info = await resp.json();
  const url = `${base}/s/${id}#${b64url(rawKey)}`;
  rawKey.fill(0);
  return { url, id, info };
}

export async function openAndDecrypt({ id, key, askPassphrase, origin } = {}) {
  if (!isId(id) || typeof key !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(key)) {
    throw new ShareError("malformed", "This link is incomplete or malformed.");
  }
  const rawKey = unb64url(key);
  const base = origin || location.origin;
  const resp = await fetch(`${base}/api/v1/shares/${id}/open`, {
    method: "POST",
    credentials: "omit",
    referrerPolicy: "no-referrer",
    cache: "no-store",
  });
  if (!resp.ok) throw await errorOf(resp);
  const opened = await resp.json();
  let sealed;
  let salt = null;
  try {
    sealed = unb64url(opened.ciphertext);
    if (opened.salt) salt = unb64url(opened.salt);
  } catch {
    throw new ShareError("decrypt", "This secret could not be decrypted: the data was altered.");
  }
  if (sealed.length < 28) throw new ShareError("decrypt", "This secret could not be decrypted: the data was altered.");
  const nonce = sealed.slice(0, 12);
  const ct = sealed.slice(12);
  let retry = false;
  for (;;) {
    let passphrase = null;
    if (salt) {
      if (typeof askPassphrase !== "function") throw new ShareError("cancelled", "This link needs a passphrase.");
      passphrase = await askPassphrase(retry);
      if (passphrase === null || passphrase === undefined) throw new ShareError("cancelled", "No passphrase given.");
    }
    try {
      const ck = await contentKey(rawKey, passphrase, salt, opened.iterations);
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce, additionalData: associatedData(id, !!salt) },
        ck,
        ct,
      );
      const bytes = new Uint8Array(plain);
      const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      bytes.fill(0);
      rawKey.fill(0);
      return text;
    } catch (e) {
      if (e instanceof ShareError) throw e;
      if (!salt) {
        throw new ShareError("decrypt", "This secret could not be decrypted: the link is wrong or the data was altered.");
      }
      retry = true;
    }
  }
}
