// Streams: the place for the streaming pipeline's page (windows, features and anomaly scores per source).
// It has no API to read yet; this page says so rather than guess one.
import { html } from "../components.js";

export function StreamsPage() {
  return html`<section>
    <h1>Streams</h1>
    <p>Live streams (raw events per source, their windows' persistence features and anomaly scores) will be shown
      here once the streaming pipeline serves them.</p>
    <p class="muted">Until then: raw events go in with <code>POST /v1/events</code>, and the Health page shows the
      Kafka broker and sink.</p>
  </section>`;
}
