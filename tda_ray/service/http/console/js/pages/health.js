// Health: what GET /v1/health reports (database, storage, dispatcher, Ray, Serve, Kafka broker and sink),
// re-read every five seconds. Nested reports are shown as they come, so new components appear by themselves.
import { api } from "../api.js";
import { ErrorBox, html, usePoll } from "../components.js";
import { num } from "../format.js";

const GOOD = /^(ok|true|up|running|healthy|alive)$/i;
const BAD = /error|fail|unhealthy|down|unreachable|false|dead/i;

function tone(key, value) {
  // A component switched off by configuration (enabled: false) is no fault.
  if (typeof value === "boolean") return key === "alive" || key === "reachable" ? (value ? "good" : "bad") : "";
  if (typeof value !== "string") return "";
  return GOOD.test(value) ? "good" : BAD.test(value) ? "bad" : "";
}

function Value({ k, v }) {
  if (v === null || v === undefined) return html`<span class="muted">none</span>`;
  if (Array.isArray(v)) return v.length ? html`<ul>${v.map((x) => html`<li><${Value} k=${k} v=${x} /></li>`)}</ul>` : html`<span class="muted">none</span>`;
  if (typeof v === "object") return html`<${Facts} data=${v} />`;
  return html`<span class=${tone(k, v)}>${typeof v === "number" ? num(v) : String(v)}</span>`;
}

const Facts = ({ data }) => html`<dl class="facts">
  ${Object.entries(data).map(([k, v]) => html`<dt>${k}</dt><dd data-key=${k}><${Value} k=${k} v=${v} /></dd>`)}
</dl>`;

function Card({ title, data }) {
  return html`<section class="card" aria-label=${title} data-component=${title}>
    <h2>${title}</h2>
    ${data === null || data === undefined ? html`<p class="bad">no answer</p>` : html`<${Value} k=${title} v=${data} />`}
  </section>`;
}

export function HealthPage() {
  const [health, error] = usePoll((signal) => api("v1/health", { signal }), () => 5000, []);
  if (!health) return html`<section><h1>Health</h1><${ErrorBox} error=${error} />${!error && html`<p>Asking…</p>`}</section>`;
  const { status, version, database, storage, dispatcher, components = {} } = health;
  return html`<section>
    <h1>Health <span class=${`badge ${status === "ok" ? "succeeded" : "failed"}`}>${status}</span></h1>
    <p class="muted">tda-ray ${version}</p>
    <${ErrorBox} error=${error} />
    <div class="cards">
      <${Card} title="database" data=${database} />
      <${Card} title="storage" data=${storage} />
      <${Card} title="dispatcher" data=${dispatcher} />
      ${Object.entries(components).map(([name, data]) => html`<${Card} title=${name} data=${data} />`)}
    </div>
  </section>`;
}
