// Compare two results: their diagrams overlaid in one dimension, and their distance when the server has a
// distance route (GET /v1/jobs/{a}/distance/{b}, looked up in the OpenAPI document, not assumed).
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, openApi } from "../api.js";
import { Chart, ErrorBox, html, Tabs } from "../components.js";
import { overlayOption } from "../charts.js";
import { num, paramsLine, shortId, when } from "../format.js";

const DISTANCE = /^\/v1\/jobs\/\{[^}]+\}\/distance\/\{[^}]+\}$/;

function JobPicker({ id, label, value, jobs, onChange }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} onChange=${(e) => onChange(e.target.value)}>
      <option value="">Choose a finished job…</option>
      ${jobs.map(
        (j) => html`<option value=${j.id} selected=${j.id === value}>
          ${shortId(j.id)} — ${paramsLine(j.params)} — ${when(j.finished_at)}</option>`,
      )}
    </select>
  </div>`;
}

// Whatever the distance route answers, its numbers shown by name (its shape is that route's to define).
function DistanceView({ body }) {
  const rows = Object.entries(body).filter(([, v]) => typeof v === "number" || Array.isArray(v) || typeof v === "string");
  return html`<dl class="facts distance" data-testid="distance">
    ${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${Array.isArray(v) ? v.map((x) => num(x)).join(", ") : num(v)}</dd>`)}
  </dl>`;
}

function Distance({ a, b }) {
  const [route, setRoute] = useState(undefined);
  const [body, setBody] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    openApi()
      .then((doc) => setRoute(Object.keys(doc.paths).find((p) => DISTANCE.test(p)) || null))
      .catch(() => setRoute(null));
  }, []);
  useEffect(() => {
    setBody(null);
    setError(null);
    if (route && a && b) api(`v1/jobs/${a}/distance/${b}`).then(setBody, setError);
  }, [route, a, b]);
  if (route === null) return html`<p class="muted">This server has no distance route; the overlay shows both diagrams.</p>`;
  return html`<${ErrorBox} error=${error} />${body && html`<${DistanceView} body=${body} />`}`;
}

export function ComparePage({ route }) {
  const [a, setA] = useState(route.query.get("a") || "");
  const [b, setB] = useState(route.query.get("b") || "");
  const [jobs, setJobs] = useState([]);
  const [results, setResults] = useState({});
  const [error, setError] = useState(null);
  const [dim, setDim] = useState(1);
  useEffect(() => {
    api("v1/jobs?status=succeeded&limit=200").then((l) => setJobs(l.items), setError);
  }, []);
  useEffect(() => {
    for (const id of [a, b]) {
      if (id && !results[id]) {
        api(`v1/jobs/${id}/result`).then((r) => setResults((all) => ({ ...all, [id]: r })), setError);
      }
    }
  }, [a, b]);
  const ra = results[a];
  const rb = results[b];
  const dims = Math.max(ra?.diagrams.length || 0, rb?.diagrams.length || 0);
  const shown = Math.min(dim, Math.max(dims - 1, 0));
  const option = useMemo(
    () => ra && rb && overlayOption(ra.diagrams, rb.diagrams, shown, [shortId(a), shortId(b)]),
    [ra, rb, shown],
  );
  return html`<section>
    <h1>Compare two results</h1>
    <div class="row pickers">
      <${JobPicker} id="compare-a" label="Result A (circles)" value=${a} jobs=${jobs} onChange=${setA} />
      <${JobPicker} id="compare-b" label="Result B (diamonds)" value=${b} jobs=${jobs} onChange=${setB} />
    </div>
    <${ErrorBox} error=${error} onDismiss=${() => setError(null)} />
    ${option &&
    html`<${Tabs} labels=${Array.from({ length: dims }, (_, k) => `H${k}`)} selected=${shown} onSelect=${setDim}
        label="Homology dimension compared" />
      <figure><figcaption>H${shown}: A and B overlaid</figcaption>
        <${Chart} name="overlay" option=${option} label=${`Persistence diagrams of H${shown}, A and B overlaid`} />
      </figure>
      <${Distance} a=${a} b=${b} />`}
    ${!option && html`<p class="muted">Choose two succeeded jobs.</p>`}
  </section>`;
}
