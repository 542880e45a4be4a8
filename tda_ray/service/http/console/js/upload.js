// Sending a file: one multipart request, or for large .npy/Parquet files an upload session of parts
// (POST /v1/uploads, PUT .../parts/{n}, POST .../complete) that can be resumed after a failed part.
import { api, ApiError, send } from "./api.js";

export const SESSION_ABOVE = 4 * 1024 * 1024; // what the Python client does too
const PART_BYTES = 8 * 1024 * 1024; // at most the session's max_part_bytes
const RETRIES = [500, 1500, 4000]; // ms before each new try of a failed part
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Sessions take .npy and Parquet only (text is parsed in memory, so it goes in one request).
async function isBinary(file) {
  const head = new Uint8Array(await file.slice(0, 6).arrayBuffer());
  const npy = head[0] === 0x93 && String.fromCharCode(...head.slice(1, 6)) === "NUMPY";
  return npy || String.fromCharCode(...head.slice(0, 4)) === "PAR1";
}

// `update(patch)` is told how it goes: {phase, sent, total, error, session, pointcloud}.
export async function uploadFile(file, update) {
  const name = file.name.slice(0, 200);
  if (file.size > SESSION_ABOVE && (await isBinary(file))) {
    update({ phase: "opening" });
    const session = await api("v1/uploads", { method: "POST", json: { name } });
    return sendParts(file, session, update);
  }
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("name", name);
  update({ phase: "sending", sent: 0, total: file.size });
  const r = await send("POST", "v1/pointclouds", form, { onProgress: (sent) => update({ sent }) });
  update({ phase: "done", sent: file.size, pointcloud: r.body });
  return r.body;
}

// Again after a failure: asks the session which parts it has and sends the others.
export async function resumeUpload(file, sessionId, update) {
  update({ error: null, phase: "resuming" });
  const session = await api(`v1/uploads/${sessionId}`);
  if (session.pointcloud_id) {
    const pc = await api(`v1/pointclouds/${session.pointcloud_id}`);
    update({ phase: "done", sent: file.size, pointcloud: pc });
    return pc;
  }
  return sendParts(file, session, update);
}

async function sendParts(file, session, update) {
  const size = Math.min(PART_BYTES, session.max_part_bytes);
  const count = Math.max(1, Math.ceil(file.size / size));
  const expected = (n) => Math.min(size, file.size - n * size);
  const have = new Set(session.parts.filter((p) => p.size === expected(p.part)).map((p) => p.part));
  let done = [...have].reduce((sum, n) => sum + expected(n), 0);
  update({ phase: "sending", session: session.id, sent: done, total: file.size, parts: count });
  for (let n = 0; n < count; n++) {
    if (have.has(n)) continue;
    const part = file.slice(n * size, n * size + expected(n));
    await putPart(session.id, n, part, (loaded) => update({ sent: done + loaded, part: n }));
    done += part.size;
    update({ sent: done });
  }
  return complete(session.id, update);
}

async function putPart(id, n, blob, onProgress) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send("PUT", `v1/uploads/${id}/parts/${n}`, blob, { contentType: "application/octet-stream", onProgress });
    } catch (err) {
      // A refusal (4xx other than a timeout) will not change by sending again.
      const final = err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;
      if (final || attempt >= RETRIES.length) throw Object.assign(err, { part: n });
      await sleep(RETRIES[attempt]);
    }
  }
}

// 201: the cloud; 202: still completing (a large cloud), so poll the session until it says.
async function complete(id, update) {
  update({ phase: "completing" });
  const r = await send("POST", `v1/uploads/${id}/complete`, null);
  let pc = r.status === 201 ? r.body : null;
  while (!pc) {
    await sleep(1000);
    const s = await api(`v1/uploads/${id}`);
    if (s.pointcloud_id) pc = await api(`v1/pointclouds/${s.pointcloud_id}`);
    else if (s.status !== "completing") throw new ApiError(422, s.error || `upload session is ${s.status}`);
  }
  update({ phase: "done", pointcloud: pc });
  return pc;
}
