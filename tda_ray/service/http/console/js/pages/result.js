// One job: its state while it runs (long polling), then the result: diagram, barcode, Betti curves,
// summary numbers, landmark bound, downloads.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, download, isFinished } from "../api.js";
import { Chart, ErrorBox, html, Progress, StatusBadge, Tabs } from "../components.js";
import { barcodeOption, bettiOption, diagramOption } from "../charts.js";
import { num, paramsLine, seconds, shortId, when } from "../format.js";
import { href } from "../router.js";
import { describe, finiteTop } from "../tda.js";

// The job, re-read with ?wait= (the server answers as soon as it finishes, or after the wait).
function useJob(id) {
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      let wait = 0;
      for (;;) {
        try {
          const j = await api(`v1/jobs/${id}?wait=${wait}`, { signal: ctl.signal });
          setJob(j);
          setError(null);
          if (isFinished(j)) return;
          wait = 20;
        } catch (err) {
          if (ctl.signal.aborted) return;
          setError(err);
          if (err.status === 404 || err.status === 422) return;
          await new Promise((r) => setTimeout(r, 3000));
        }
      }
    })();
    return () => ctl.abort();
  }, [id]);
  return [job, error, setJob];
}

function JobHeader({ job, onCancelled }) {
  const [error, setError] = useState(null);
  const cancel = async () => {
    try {
      onCancelled(await api(`v1/jobs/${job.id}`, { method: "DELETE" }));
    } catch (err) {
      setError(err);
    }
  };
  return html`<div class="job-header">
    <dl class="facts">
      <dt>Status</dt><dd><${StatusBadge} status=${job.status} /></dd>
      <dt>Algorithm</dt><dd>${job.algorithm}</dd>
      <dt>Parameters</dt><dd>${paramsLine(job.params) || "defaults"}</dd>
      <dt>Point cloud</dt><dd><code title=${job.pointcloud_id}>${shortId(job.pointcloud_id)}</code></dd>
      <dt>Created</dt><dd>${when(job.created_at)}</dd>
      <dt>Finished</dt><dd>${when(job.finished_at)}</dd>
    </dl>
    ${!isFinished(job) &&
    html`<div class="row"><${Progress} value=${job.progress} label="Job progress" />
      <button type="button" class="danger" onClick=${cancel}>Cancel job</button></div>`}
    ${job.error && html`<p class="error" role="alert">${job.error}</p>`}
    <${ErrorBox} error=${error} />
  </div>`;
}

function Summary({ result }) {
  const dims = result.diagrams.map((pairs, k) => ({ k, ...describe(pairs) }));
  const L = result.landmarks;
  return html`<div class="summary">
    <dl class="facts">
      <dt>Points</dt><dd>${num(result.n_points)} in ${result.dim} dimensions</dd>
      <dt>Engine time</dt><dd>${seconds(result.elapsed_s)}</dd>
      ${L && html`<dt>Landmarks</dt><dd>${num(L.count)} of ${num(L.n_points)} (asked: ${L.requested})</dd>
        <dt>Covering radius eps</dt><dd data-value="eps">${num(L.eps)}</dd>
        <dt>Bottleneck bound (2 eps)</dt><dd data-value="bound">${num(L.bottleneck_bound)}</dd>`}
    </dl>
    <div class="table-wrap"><table class="numbers">
      <caption>Per homology dimension</caption>
      <thead><tr><th scope="col">dim</th><th scope="col">pairs</th><th scope="col">Betti (end)</th>
        <th scope="col">total persistence</th><th scope="col">entropy</th><th scope="col">longest finite bar</th></tr></thead>
      <tbody>${dims.map(
        (d) => html`<tr data-dim=${d.k}><th scope="row">H${d.k}</th><td class="num">${num(result.n_pairs[d.k] ?? d.pairs)}</td>
          <td class="num">${num(result.betti[d.k] ?? d.essential)}</td><td class="num">${num(result.total_persistence[d.k])}</td>
          <td class="num">${num(result.persistence_entropy[d.k])}</td><td class="num">${num(d.longest)}</td></tr>`,
      )}</tbody>
    </table></div>
  </div>`;
}

function Downloads({ id }) {
  const [error, setError] = useState(null);
  const get = (path, name) => download(`v1/jobs/${id}/${path}`, name).catch(setError);
  return html`<div class="row downloads">
    <span>Download:</span>
    <button type="button" onClick=${() => get("result", `tda-${shortId(id)}.json`)}>Result JSON</button>
    <button type="button" onClick=${() => get("diagram.svg", `tda-${shortId(id)}.svg`)}>Diagram SVG</button>
    <button type="button" onClick=${() => get("diagram.png", `tda-${shortId(id)}.png`)}>Diagram PNG</button>
    <button type="button" onClick=${() => get("barcode.svg", `tda-${shortId(id)}-barcode.svg`)}>Barcode SVG</button>
    <button type="button" onClick=${() => get("barcode.png", `tda-${shortId(id)}-barcode.png`)}>Barcode PNG</button>
    <a href=${`${href("compare")}?a=${id}`}>Compare with another result</a>
    <${ErrorBox} error=${error} />
  </div>`;
}

function Charts({ result }) {
  const [dim, setDim] = useState(Math.min(1, result.diagrams.length - 1));
  const top = useMemo(() => finiteTop(result.diagrams), [result]);
  const diagram = useMemo(() => diagramOption(result.diagrams), [result]);
  const betti = useMemo(() => bettiOption(result.diagrams), [result]);
  const barcode = useMemo(() => barcodeOption(result.diagrams[dim] || [], dim, top), [result, dim, top]);
  const labels = result.diagrams.map((_, k) => `H${k}`);
  return html`<div class="charts">
    <figure>
      <figcaption>Persistence diagram (essential classes as triangles on the ∞ line)</figcaption>
      <${Chart} name="diagram" option=${diagram} label="Persistence diagram: death against birth, per dimension" />
    </figure>
    <figure>
      <figcaption>Barcode</figcaption>
      <${Tabs} labels=${labels} selected=${dim} onSelect=${setDim} label="Homology dimension of the barcode" />
      <${Chart} name="barcode" option=${barcode} label=${`Barcode of H${dim}, longest bars first`} />
    </figure>
    <figure>
      <figcaption>Betti curves: classes alive at each scale</figcaption>
      <${Chart} name="betti" option=${betti} height=${300} label="Betti numbers against the scale, per dimension" />
    </figure>
  </div>`;
}

const COCYCLE_ROWS = 12; // classes listed per dimension, longest-lived first
const SIMPLICES_SHOWN = 4;

// A representative cocycle per class (params.cocycles): its size and its first simplices with coefficients.
function Cocycles({ result }) {
  const dims = result.cocycles.map((_, k) => k).filter((k) => k >= 1 && result.diagrams[k]?.length);
  const [dim, setDim] = useState(dims[0] ?? 1);
  if (!dims.length) return null;
  const pairs = result.diagrams[dim] || [];
  const life = ([b, d]) => (d === null ? Infinity : d - b);
  const order = pairs.map((_, i) => i).sort((i, j) => life(pairs[j]) - life(pairs[i])).slice(0, COCYCLE_ROWS);
  const simplex = (row) => `[${row.slice(0, -1).join(",")}]×${row[row.length - 1]}`;
  return html`<section class="cocycles" aria-labelledby="cocycles-title">
    <h2 id="cocycles-title">Representative cocycles</h2>
    <${Tabs} labels=${dims.map((k) => `H${k}`)} selected=${dims.indexOf(dim)} onSelect=${(i) => setDim(dims[i])}
      label="Homology dimension of the cocycles" />
    <div class="table-wrap"><table class="numbers" data-cocycles=${dim}>
      <caption>H${dim}: ${num(pairs.length)} classes, the ${order.length} longest-lived (simplex vertices × coefficient)</caption>
      <thead><tr><th scope="col">class</th><th scope="col">birth</th><th scope="col">death</th>
        <th scope="col">simplices</th><th scope="col">first simplices</th></tr></thead>
      <tbody>${order.map((i) => {
        const rows = result.cocycles[dim][i];
        return html`<tr data-class=${i}><th scope="row">${i}</th><td class="num">${num(pairs[i][0])}</td>
          <td class="num">${pairs[i][1] === null ? "∞" : num(pairs[i][1])}</td><td class="num">${num(rows.length)}</td>
          <td><code>${rows.slice(0, SIMPLICES_SHOWN).map(simplex).join(" ")}${rows.length > SIMPLICES_SHOWN ? " …" : ""}</code></td></tr>`;
      })}</tbody>
    </table></div>
  </section>`;
}

export function ResultPage({ route }) {
  const id = route.args[0];
  const [job, error, setJob] = useJob(id);
  const [result, setResult] = useState(null);
  const [resultError, setResultError] = useState(null);
  useEffect(() => {
    if (job?.status === "succeeded" && !result) api(`v1/jobs/${id}/result`).then(setResult, setResultError);
  }, [job?.status]);
  return html`<section>
    <p><a href="#/jobs">← Jobs</a></p>
    <h1>Job <code>${shortId(id)}</code></h1>
    <${ErrorBox} error=${error || resultError} />
    ${job && html`<${JobHeader} job=${job} onCancelled=${setJob} />`}
    ${result &&
    html`<div class="result" data-job=${id}>
      <${Downloads} id=${id} />
      <${Summary} result=${result} />
      <${Charts} result=${result} />
      ${result.cocycles && html`<${Cocycles} result=${result} />`}
    </div>`}
  </section>`;
}
