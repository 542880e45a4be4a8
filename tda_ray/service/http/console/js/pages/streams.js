// Streams: every source with its latest score; one source's scores over event time (live, read on with
// `since=`), its alerts with their reasons, a window's features and vectorization, and its spec (editable).
import { useEffect, useMemo, useState } from "preact/hooks";
import { api } from "../api.js";
import { Chart, ErrorBox, html, usePoll } from "../components.js";
import { scoreOption, vectorOption } from "../charts.js";
import { num, when } from "../format.js";
import { href } from "../router.js";
import { SpecForm } from "./streamspec.js";

const POLL_MS = 1500;
const PAGE = 5000;

function ScoreBadge({ record }) {
  if (!record) return html`<span class="badge">no windows</span>`;
  if (record.alert) return html`<span class="badge failed">alert</span>`;
  return record.warmup ? html`<span class="badge">warm-up</span>` : html`<span class="badge succeeded">normal</span>`;
}

function StreamList({ selected }) {
  const [list, error] = usePoll((signal) => api("v1/streams", { signal }), () => 2000, []);
  return html`<section aria-labelledby="streams-title">
    <h2 id="streams-title">Sources ${list && html`<span class="muted">(${list.items.length})</span>`}</h2>
    <${ErrorBox} error=${error} />
    ${list &&
    (list.items.length
      ? html`<div class="table-wrap"><table class="streams">
          <caption class="visually-hidden">Sources and their latest window</caption>
          <thead><tr><th scope="col">Source</th><th scope="col">Windows</th><th scope="col">Alerts</th>
            <th scope="col">Latest score</th><th scope="col">State</th></tr></thead>
          <tbody>${list.items.map(
            (s) => html`<tr key=${s.source_id} data-source=${s.source_id} aria-current=${s.source_id === selected ? "true" : undefined}>
              <th scope="row"><a href=${href("streams", s.source_id)}>${s.source_id}</a></th>
              <td class="num">${num(s.windows)}</td>
              <td class="num">${num(s.alerts)}</td>
              <td class="num" title=${s.latest ? when(s.latest.window_end) : ""}>${s.latest ? num(s.latest.score, 6) : "—"}</td>
              <td><${ScoreBadge} record=${s.latest} /></td>
            </tr>`,
          )}</tbody>
        </table></div>`
      : html`<p class="muted">No streams yet: post events to <code>POST /v1/events</code>, or set a spec for a source.</p>`)}
  </section>`;
}

// The source's score records, read on from the last window end every POLL_MS (at once while pages are full).
// A window is one `seq`: re-read ends (since= is inclusive) are dropped. Paused while the tab is hidden.
function useScores(source) {
  const [state, setState] = useState({ records: [], error: null });
  useEffect(() => {
    const ctl = new AbortController();
    const seen = new Set();
    let records = [];
    let since = null;
    let timer = null;
    setState({ records, error: null });
    const run = async () => {
      let wait = POLL_MS;
      try {
        const q = `limit=${PAGE}${since ? `&since=${encodeURIComponent(since)}` : ""}`;
        const page = await api(`v1/streams/${encodeURIComponent(source)}/scores?${q}`, { signal: ctl.signal });
        const fresh = page.items.filter((r) => !seen.has(r.seq));
        fresh.forEach((r) => seen.add(r.seq));
        if (fresh.length) records = [...records, ...fresh];
        since = page.next_since ?? (records.length ? records[records.length - 1].window_end : null);
        if (page.next_since) wait = 0;
        setState({ records, error: null });
      } catch (error) {
        if (ctl.signal.aborted || error.name === "AbortError") return;
        setState((s) => ({ ...s, error }));
        wait = 5000;
      }
      timer = setTimeout(next, wait);
    };
    // A hidden tab reads on once it is shown again (as usePoll does).
    const next = () => (document.hidden ? document.addEventListener("visibilitychange", next, { once: true }) : run());
    run();
    return () => {
      ctl.abort();
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", next);
    };
  }, [source]);
  return state;
}

const reasonLine = (r) => r.reasons.map((x) => `${x.feature} (z ${num(x.z, 3)})`).join(", ");

function AlertList({ alerts, onSelect, selected }) {
  if (!alerts.length) return html`<p class="muted">No alerts.</p>`;
  return html`<ol class="alerts" aria-label="Alerts, newest first">
    ${[...alerts].reverse().map(
      (r) => html`<li key=${r.seq} data-seq=${r.seq}>
        <button type="button" class="link" aria-pressed=${r.seq === selected} onClick=${() => onSelect(r.seq)}>
          window ${r.seq}</button>
        <span class="muted"> ${when(r.window_end)} · score ${num(r.score, 6)}</span>
        <div class="reasons">${r.reasons.length ? reasonLine(r) : "no feature with z ≥ 3"}</div>
      </li>`,
    )}
  </ol>`;
}

function WindowDetail({ record, onStep }) {
  const option = useMemo(() => vectorOption(record), [record]);
  const why = new Map(record.reasons.map((x) => [x.feature, x]));
  return html`<section class="window" aria-labelledby="window-title" data-seq=${record.seq}>
    <div class="row">
      <h2 id="window-title">Window ${record.seq} <${ScoreBadge} record=${record} /></h2>
      <button type="button" onClick=${() => onStep(-1)} aria-label="Previous window">←</button>
      <button type="button" onClick=${() => onStep(1)} aria-label="Next window">→</button>
    </div>
    <p class="muted">The API keeps each window's features and vectorization (not its diagram): they are shown here.</p>
    <dl class="facts">
      <dt>Event time</dt><dd>${record.window_start} – ${record.window_end}</dd>
      <dt>Events</dt><dd>${num(record.n_events)}</dd>
      <dt>Score</dt><dd data-value="score">${num(record.score, 6)} (threshold ${num(record.threshold, 6)})</dd>
      <dt>Spec version</dt><dd>${record.spec_version}</dd>
      ${record.error && html`<dt>Error</dt><dd class="bad">${record.error}</dd>`}
    </dl>
    <div class="table-wrap"><table class="features">
      <caption>Features (z: robust z-score against the baseline, for the reasons of an alert)</caption>
      <thead><tr><th scope="col">Feature</th><th scope="col">Value</th><th scope="col">Baseline</th><th scope="col">z</th></tr></thead>
      <tbody>${Object.entries(record.features).map(([name, v]) => {
        const r = why.get(name);
        return html`<tr key=${name} data-feature=${name} class=${r ? "reason" : ""}>
          <th scope="row">${name}</th><td class="num">${num(v, 6)}</td>
          <td class="num">${r ? num(r.baseline, 6) : ""}</td><td class="num">${r ? num(r.z, 3) : ""}</td></tr>`;
      })}</tbody>
    </table></div>
    <figure>
      <figcaption>Vectorization (${(record.vector || []).length} values)</figcaption>
      <${Chart} option=${option} name="vector" label=${`Vectorization of window ${record.seq}`} height=${240} />
    </figure>
  </section>`;
}

function StreamView({ source }) {
  const { records, error } = useScores(source);
  const [seq, setSeq] = useState(null);
  useEffect(() => setSeq(null), [source]);
  const option = useMemo(() => scoreOption(records), [records]);
  const alerts = useMemo(() => records.filter((r) => r.alert), [records]);
  const index = records.findIndex((r) => r.seq === seq);
  const step = (d) => records.length && setSeq(records[Math.min(records.length - 1, Math.max(0, index + d))].seq);
  return html`<section aria-labelledby="stream-title">
    <h2 id="stream-title">${source}</h2>
    <${ErrorBox} error=${error} />
    <div class="columns stream-columns">
      <div>
        <figure>
          <figcaption>Score per window (${records.length} windows, ${alerts.length} alerts); click a point for its window</figcaption>
          <${Chart} option=${option} name="scores" label=${`Anomaly score of ${source} over event time`} merge=${true}
            onClick=${(p) => p.data && setSeq(p.data.seq)} />
        </figure>
        ${index >= 0 && html`<${WindowDetail} record=${records[index]} onStep=${step} />`}
        ${index < 0 && records.length > 0 && html`<p><button type="button" onClick=${() => setSeq(records[records.length - 1].seq)}>Show the latest window</button></p>`}
        <h2 id="alerts-title">Alerts</h2>
        <${AlertList} alerts=${alerts} onSelect=${setSeq} selected=${seq} />
      </div>
      <${SpecForm} source=${source} />
    </div>
  </section>`;
}

export function StreamsPage({ route }) {
  const source = route.args[0] || null;
  return html`<section>
    <h1>Streams</h1>
    <${StreamList} selected=${source} />
    ${source ? html`<${StreamView} key=${source} source=${source} />` : html`<p class="muted">Choose a source to see its scores, alerts and spec.</p>`}
  </section>`;
}
