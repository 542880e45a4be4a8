// Data: drop files to upload them (with progress, and resume after a failed part), and the clouds stored.
import { useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBox, html, Pager, Progress, usePoll } from "../components.js";
import { bytes, shortId, when } from "../format.js";
import { href } from "../router.js";
import { resumeUpload, uploadFile } from "../upload.js";

const PAGE = 20;
let nextKey = 0;

function DropZone({ onFiles }) {
  const input = useRef(null);
  const [over, setOver] = useState(false);
  const drop = (e) => {
    e.preventDefault();
    setOver(false);
    if (e.dataTransfer?.files?.length) onFiles([...e.dataTransfer.files]);
  };
  return html`<div class=${`dropzone${over ? " over" : ""}`} data-testid="dropzone"
      onDragOver=${(e) => (e.preventDefault(), setOver(true))} onDragLeave=${() => setOver(false)} onDrop=${drop}>
    <p>
      Drop point clouds here: <code>.npy</code>, <code>.parquet</code>, <code>.csv</code> or <code>.txt</code>${" "}
      (one point per line). Large <code>.npy</code>/Parquet files go in resumable parts.
    </p>
    <label class="button" for="file-input">Choose files…</label>
    <input id="file-input" ref=${input} class="visually-hidden" type="file" multiple
      accept=".npy,.parquet,.pq,.csv,.txt,.xyz,text/plain,text/csv"
      onChange=${(e) => (onFiles([...e.target.files]), (e.target.value = ""))} />
  </div>`;
}

function UploadRow({ item, onResume }) {
  const { file, phase, sent = 0, total = file.size, error, pointcloud } = item;
  const label = `Upload of ${file.name}`;
  return html`<li class="upload" data-phase=${phase}>
    <div class="row">
      <strong>${file.name}</strong><span class="muted">${bytes(file.size)}</span>
      <span class="muted">${error ? "failed" : phase}</span>
      ${pointcloud && html`<a href=${`${href("jobs")}?pc=${pointcloud.id}`}>New job on it</a>`}
      ${error && item.session && html`<button type="button" onClick=${onResume}>Resume</button>`}
    </div>
    ${phase !== "done" && html`<${Progress} value=${total ? sent / total : 0} label=${label} />`}
    <${ErrorBox} error=${error} />
  </li>`;
}

function Uploads({ onUploaded }) {
  const [items, setItems] = useState([]);
  const patch = (key, p) => setItems((all) => all.map((it) => (it.key === key ? { ...it, ...p } : it)));
  const run = async (key, file, work) => {
    try {
      await work((p) => patch(key, p));
      onUploaded();
    } catch (error) {
      patch(key, { error });
    }
  };
  const add = (files) => {
    const fresh = files.map((file) => ({ key: nextKey++, file, phase: "waiting" }));
    setItems((all) => [...fresh, ...all]);
    fresh.forEach((it) => run(it.key, it.file, (u) => uploadFile(it.file, u)));
  };
  const resume = (it) => run(it.key, it.file, (u) => resumeUpload(it.file, it.session, u));
  return html`<${DropZone} onFiles=${add} />
    ${items.length > 0 &&
    html`<ul class="uploads" aria-label="Uploads" aria-live="polite">
      ${items.map((it) => html`<${UploadRow} key=${it.key} item=${it} onResume=${() => resume(it)} />`)}
    </ul>`}`;
}

function CloudTable({ list }) {
  if (!list.items.length) return html`<p class="muted">No point clouds yet: drop one above.</p>`;
  return html`<div class="table-wrap"><table class="clouds">
    <caption class="visually-hidden">Point clouds, newest first</caption>
    <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Points</th><th scope="col">Dim</th>
      <th scope="col">Source</th><th scope="col">Uploaded</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
    <tbody>
      ${list.items.map(
        (pc) => html`<tr key=${pc.id} data-id=${pc.id}>
          <td>${pc.name || html`<span class="muted">unnamed</span>`}</td><td><code title=${pc.id}>${shortId(pc.id)}</code></td>
          <td class="num">${pc.n_points.toLocaleString("en-US")}</td><td class="num">${pc.dim}</td><td>${pc.source}${pc.kind && pc.kind !== "points" ? ` (${pc.kind.replace("_", " ")}${pc.shape?.length === 3 ? ` ${pc.shape.join("×")}` : ""})` : ""}</td>
          <td>${when(pc.created_at)}</td><td><a href=${`${href("jobs")}?pc=${pc.id}`}>New job</a></td>
        </tr>`,
      )}
    </tbody></table></div>`;
}

export function DataPage() {
  const [offset, setOffset] = useState(0);
  const [list, error, reload] = usePoll((signal) => api(`v1/pointclouds?limit=${PAGE}&offset=${offset}`, { signal }), () => 15000, [offset]);
  return html`<section>
    <h1>Data</h1>
    <${Uploads} onUploaded=${reload} />
    <h2>Point clouds ${list && html`<span class="muted">(${list.total})</span>`}</h2>
    <${ErrorBox} error=${error} />
    ${list && html`<${CloudTable} list=${list} /><${Pager} ...${list} onOffset=${setOffset} />`}
  </section>`;
}
