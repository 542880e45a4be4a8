// Jobs: the submit form (from the OpenAPI schema) and the live list with status, progress and cancel.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, openApi } from "../api.js";
import { ErrorBox, html, Pager, Progress, StatusBadge, usePoll } from "../components.js";
import { paramsLine, shortId, when } from "../format.js";
import { href } from "../router.js";
import { FieldInput, initialValue, jobVariants, valueOf } from "../schemaform.js";

const PAGE = 20;
const ACTIVE = new Set(["queued", "running"]);

function CloudPicker({ value, onChange, clouds }) {
  return html`<div class="field" data-field="pointcloud_id">
    <label for="job-pointcloud">Point cloud *</label>
    <select id="job-pointcloud" required value=${value} onChange=${(e) => onChange(e.target.value)}>
      <option value="">Choose a point cloud…</option>
      ${clouds.map(
        (pc) => html`<option value=${pc.id} selected=${pc.id === value}>
          ${pc.name || "unnamed"} — ${pc.n_points.toLocaleString("en-US")} × ${pc.dim} (${shortId(pc.id)})
        </option>`,
      )}
    </select>
  </div>`;
}

function JobForm({ preset, onSubmitted }) {
  const [variants, setVariants] = useState(null);
  const [clouds, setClouds] = useState([]);
  const [alg, setAlg] = useState(0);
  const [values, setValues] = useState({});
  const [pc, setPc] = useState(preset || "");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    openApi()
      .then((doc) => setVariants(jobVariants(doc)))
      .catch(setError);
    // The newest clouds, and the one asked for (#/jobs?pc=ID) even if it is older than those.
    api("v1/pointclouds?limit=200")
      .then(async (l) => {
        const known = !preset || l.items.some((pc) => pc.id === preset);
        setClouds(known ? l.items : [await api(`v1/pointclouds/${preset}`), ...l.items]);
      })
      .catch(setError);
  }, []);
  const variant = variants?.[alg];
  useEffect(() => variant && setValues(Object.fromEntries(variant.fields.map((f) => [f.name, initialValue(f)]))), [variant]);
  if (!variants) return html`<${ErrorBox} error=${error} />${!error && html`<p class="muted">Reading the job schema…</p>`}`;
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const params = Object.fromEntries(variant.fields.filter((f) => values[f.name]).map((f) => [f.name, valueOf(f, values[f.name])]));
      const job = await api("v1/jobs", { method: "POST", json: { pointcloud_id: pc, algorithm: variant.algorithm, params } });
      onSubmitted(job);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="job-form" onSubmit=${submit} aria-labelledby="job-form-title">
    <h2 id="job-form-title">New job</h2>
    <${CloudPicker} value=${pc} onChange=${setPc} clouds=${clouds} />
    ${variants.length > 1 &&
    html`<div class="field"><label for="job-algorithm">Algorithm</label>
      <select id="job-algorithm" onChange=${(e) => setAlg(Number(e.target.value))}>
        ${variants.map((v, i) => html`<option value=${i} selected=${i === alg}>${v.algorithm}</option>`)}
      </select></div>`}
    <p class="muted">${variant.description}</p>
    <fieldset><legend>Parameters</legend>
      ${variant.fields.map(
        (f) => values[f.name] &&
          html`<${FieldInput} key=${variant.algorithm + f.name} f=${f} value=${values[f.name]} idPrefix="param"
            onChange=${(v) => setValues((all) => ({ ...all, [f.name]: v }))} />`,
      )}
    </fieldset>
    <${ErrorBox} error=${error} onDismiss=${() => setError(null)} />
    <button type="submit" class="primary" disabled=${busy}>${busy ? "Submitting…" : "Run job"}</button>
  </form>`;
}

function JobRow({ job, onCancel }) {
  const active = ACTIVE.has(job.status);
  return html`<tr data-id=${job.id} data-status=${job.status}>
    <td><a href=${href("job", job.id)}><code title=${job.id}>${shortId(job.id)}</code></a></td>
    <td><code title=${job.pointcloud_id}>${shortId(job.pointcloud_id)}</code></td>
    <td>${job.algorithm}<br /><span class="muted">${paramsLine(job.params)}</span></td>
    <td><${StatusBadge} status=${job.status} />${job.error && job.status === "failed" && html`<div class="muted clip" title=${job.error}>${job.error}</div>`}</td>
    <td>${active ? html`<${Progress} value=${job.progress} label=${`Progress of job ${shortId(job.id)}`} />` : ""}</td>
    <td>${when(job.created_at)}</td>
    <td>
      ${active && html`<button type="button" class="danger" onClick=${() => onCancel(job)} aria-label=${`Cancel job ${shortId(job.id)}`}>Cancel</button>`}
      ${job.status === "succeeded" && html`<a href=${href("job", job.id)}>Result</a>`}
    </td>
  </tr>`;
}

function JobList({ refresh }) {
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState("");
  const [actionError, setActionError] = useState(null);
  const query = `v1/jobs?limit=${PAGE}&offset=${offset}${status ? `&status=${status}` : ""}`;
  // Every second while a job shown is queued or running, else every five.
  const [list, error, reload] = usePoll((signal) => api(query, { signal }), (l) => (l.items.some((j) => ACTIVE.has(j.status)) ? 1000 : 5000), [query, refresh]);
  const cancel = async (job) => {
    setActionError(null);
    try {
      await api(`v1/jobs/${job.id}`, { method: "DELETE" });
    } catch (err) {
      setActionError(err);
    }
    reload();
  };
  return html`<section aria-labelledby="jobs-title">
    <div class="row"><h2 id="jobs-title">Jobs ${list && html`<span class="muted">(${list.total})</span>`}</h2>
      <label for="job-status" class="inline">Status</label>
      <select id="job-status" value=${status} onChange=${(e) => (setStatus(e.target.value), setOffset(0))}>
        <option value="">all</option>
        ${["queued", "running", "succeeded", "failed", "cancelled"].map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
    </div>
    <${ErrorBox} error=${actionError || error} />
    ${list &&
    (list.items.length
      ? html`<div class="table-wrap"><table class="jobs">
          <caption class="visually-hidden">Jobs, newest first</caption>
          <thead><tr><th scope="col">Job</th><th scope="col">Cloud</th><th scope="col">Algorithm</th><th scope="col">Status</th>
            <th scope="col">Progress</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>${list.items.map((j) => html`<${JobRow} key=${j.id} job=${j} onCancel=${cancel} />`)}</tbody>
        </table></div>
        <${Pager} ...${list} onOffset=${setOffset} />`
      : html`<p class="muted">No jobs${status ? ` that are ${status}` : ""}.</p>`)}
  </section>`;
}

export function JobsPage({ route }) {
  const [refresh, setRefresh] = useState(0);
  const [last, setLast] = useState(null);
  const preset = useMemo(() => route.query.get("pc") || "", [route]);
  const submitted = (job) => {
    setLast(job);
    setRefresh((r) => r + 1);
  };
  return html`<section>
    <h1>Jobs</h1>
    <div class="columns">
      <div>
        <${JobForm} preset=${preset} onSubmitted=${submitted} />
        <p role="status" class="notice" hidden=${!last}>
          ${last && html`Job <a href=${href("job", last.id)} data-job=${last.id}>${shortId(last.id)}</a> queued: open it to watch.`}
        </p>
      </div>
      <${JobList} refresh=${refresh} />
    </div>
  </section>`;
}
