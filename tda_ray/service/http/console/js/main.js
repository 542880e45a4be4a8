// The console's shell: navigation, the API key dialog, and one page at a time (hash routes).
import { render } from "preact";
import { useEffect, useErrorBoundary, useRef, useState } from "preact/hooks";
import { apiKey, setKeyPrompt } from "./api.js";
import { ErrorBox, html } from "./components.js";
import { useRoute } from "./router.js";
import { DataPage } from "./pages/data.js";
import { JobsPage } from "./pages/jobs.js";
import { ResultPage } from "./pages/result.js";
import { ComparePage } from "./pages/compare.js";
import { HealthPage } from "./pages/health.js";
import { StreamsPage } from "./pages/streams.js";

const PAGES = [
  { id: "data", title: "Data", view: DataPage },
  { id: "jobs", title: "Jobs", view: JobsPage },
  { id: "compare", title: "Compare", view: ComparePage },
  { id: "streams", title: "Streams", view: StreamsPage },
  { id: "health", title: "Health", view: HealthPage },
];

// Asked for when the API answers 401; resolves to the key typed, or null.
function KeyDialog({ request, onDone }) {
  const dialog = useRef(null);
  const [key, setKey] = useState("");
  useEffect(() => {
    if (request && !dialog.current.open) {
      setKey("");
      dialog.current.showModal();
    }
  }, [request]);
  const finish = (value) => {
    dialog.current.close();
    onDone(value);
  };
  return html`<dialog ref=${dialog} class="key-dialog" aria-labelledby="key-title" onCancel=${() => onDone(null)}>
    <form method="dialog" onSubmit=${(e) => (e.preventDefault(), finish(key.trim() || null))}>
      <h2 id="key-title">API key needed</h2>
      <p class="muted">${request?.detail}</p>
      <label for="api-key">API key (sent as X-API-Key, kept for this browser tab)</label>
      <input id="api-key" type="password" autocomplete="off" value=${key} onInput=${(e) => setKey(e.target.value)} required />
      <div class="row">
        <button type="submit" class="primary">Use key</button>
        <button type="button" onClick=${() => finish(null)}>Cancel</button>
      </div>
    </form>
  </dialog>`;
}

function Page({ route }) {
  const [error, reset] = useErrorBoundary();
  if (error) {
    return html`<section><h1>Something went wrong</h1><${ErrorBox} error=${error} onDismiss=${reset} /></section>`;
  }
  const page = route.page === "job" ? { view: ResultPage } : PAGES.find((p) => p.id === route.page);
  if (!page) return html`<section><h1>Not found</h1><p>No page “${route.page}”. <a href="#/data">Go to Data</a>.</p></section>`;
  const View = page.view;
  return html`<${View} route=${route} />`;
}

function App() {
  const route = useRoute();
  const [keyRequest, setKeyRequest] = useState(null);
  const [hasKey, setHasKey] = useState(Boolean(apiKey.get()));
  useEffect(() => {
    setKeyPrompt(
      (detail) =>
        new Promise((resolve) =>
          setKeyRequest({
            detail,
            resolve: (k) => {
              setKeyRequest(null);
              setHasKey(Boolean(k || apiKey.get()));
              resolve(k);
            },
          }),
        ),
    );
  }, []);
  const current = route.page === "job" ? "jobs" : route.page;
  useEffect(() => {
    const title = PAGES.find((p) => p.id === current)?.title;
    document.title = title ? `${title} · tda-ray` : "tda-ray";
  }, [current]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => (e.preventDefault(), document.getElementById("main").focus())}>
      Skip to content
    </a>
    <header class="top">
      <span class="brand">tda-ray</span>
      <nav aria-label="Pages">
        ${PAGES.map(
          (p) => html`<a href=${`#/${p.id}`} aria-current=${p.id === current ? "page" : undefined}>${p.title}</a>`,
        )}
      </nav>
      <span class="spacer"></span>
      ${hasKey &&
      html`<button type="button" class="link" onClick=${() => (apiKey.set(null), setHasKey(false))}>Forget API key</button>`}
      <a class="muted" href="docs">API docs</a>
    </header>
    <main id="main" tabindex="-1"><${Page} route=${route} /></main>
    <${KeyDialog} request=${keyRequest} onDone=${(k) => keyRequest?.resolve(k)} />
  `;
}

// Never a blank page: whatever escapes the pages is shown where the console would have been.
function fatal(message) {
  const box = document.getElementById("app");
  if (box && !box.querySelector("header.top")) {
    box.innerHTML = "";
    const p = Object.assign(document.createElement("pre"), { className: "error", textContent: message });
    p.setAttribute("role", "alert");
    box.append(p);
  }
}
addEventListener("error", (e) => fatal(`The console failed to start: ${e.message}`));

try {
  const root = document.getElementById("app");
  root.textContent = "";
  render(html`<${App} />`, root);
} catch (err) {
  fatal(`The console failed to start: ${err.message}`);
}
