// The /v1 API from the page: same origin, the API key in X-API-Key once the server has asked for it (401).
// Every failure becomes an ApiError whose message is the API's `detail`, ready to show.

const KEY_STORE = "tda-ray.api-key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(formatDetail(detail));
    this.status = status;
    this.detail = detail;
  }
}

// FastAPI's detail: a message, or a list of validation errors {loc, msg}: one line each, "where: what".
export function formatDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const where = (e.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${e.msg}` : String(e.msg ?? JSON.stringify(e));
      })
      .join("\n");
  }
  return detail == null ? "unknown error" : JSON.stringify(detail);
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORE),
  set: (key) => (key ? sessionStorage.setItem(KEY_STORE, key) : sessionStorage.removeItem(KEY_STORE)),
};

// The app installs a prompt (a dialog) that resolves to a key, or null when the user gives up.
// Requests that meet a 401 together share one prompt.
let askForKey = null;
let pendingAsk = null;
export function setKeyPrompt(fn) {
  askForKey = fn;
}
async function newKeyAfter401(detail) {
  if (!askForKey) return null;
  pendingAsk ??= askForKey(formatDetail(detail)).finally(() => (pendingAsk = null));
  const key = await pendingAsk;
  if (key) apiKey.set(key);
  return key;
}

async function detailOf(res) {
  const text = await res.text();
  try {
    const body = JSON.parse(text);
    if (body && "detail" in body) return body.detail;
  } catch {
    // not JSON: a proxy's error page, say
  }
  return `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ""}`;
}

function withKey(headers = {}) {
  const key = apiKey.get();
  return key ? { ...headers, "X-API-Key": key } : headers;
}

// fetch() a path of the API (relative: "v1/jobs"); JSON in and out unless `raw` (then the Response).
export async function api(path, { method = "GET", json, body, headers, signal, raw = false } = {}) {
  for (;;) {
    const h = withKey(headers);
    let payload = body;
    if (json !== undefined) {
      h["Content-Type"] = "application/json";
      payload = JSON.stringify(json);
    }
    let res;
    try {
      res = await fetch(path, { method, body: payload, headers: h, signal });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, `the service does not answer (${err.message})`);
    }
    if (res.status === 401) {
      const detail = await detailOf(res);
      if (await newKeyAfter401(detail)) continue;
      throw new ApiError(401, detail);
    }
    if (!res.ok) throw new ApiError(res.status, await detailOf(res));
    return raw ? res : res.json();
  }
}

// XMLHttpRequest where upload progress matters (fetch reports none): resolves to {status, body}.
export function send(method, path, payload, { contentType, onProgress, signal } = {}) {
  const once = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, path);
      for (const [k, v] of Object.entries(withKey(contentType ? { "Content-Type": contentType } : {}))) {
        xhr.setRequestHeader(k, v);
      }
      if (onProgress) xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
      xhr.onload = () => {
        let parsed = null;
        try {
          parsed = JSON.parse(xhr.responseText);
        } catch {
          parsed = null;
        }
        resolve({ status: xhr.status, body: parsed, text: xhr.responseText });
      };
      xhr.onerror = () => reject(new ApiError(0, "the connection failed while sending"));
      xhr.onabort = () => reject(new DOMException("aborted", "AbortError"));
      signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(payload);
    });
  return (async () => {
    for (;;) {
      const r = await once();
      const detail = r.body && "detail" in r.body ? r.body.detail : `${r.status}: ${r.text.slice(0, 300)}`;
      if (r.status === 401 && (await newKeyAfter401(detail))) continue;
      if (r.status < 200 || r.status >= 300) throw new ApiError(r.status, detail);
      return r;
    }
  })();
}

// A download of an API answer (the key travels in the header, so a plain link would not do).
export async function download(path, filename) {
  const res = await api(path, { raw: true });
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const isFinished = (job) => TERMINAL.has(job.status);

// The OpenAPI document, fetched once (the job form and the optional routes are read from it).
let openapi = null;
export function openApi() {
  openapi ??= api("openapi.json").catch((err) => {
    openapi = null;
    throw err;
  });
  return openapi;
}
