// Pieces shared by the pages: errors, progress, status, paging, polling, and the ECharts wrapper.
import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import * as echarts from "echarts";

export const html = htm.bind(h);

// An API error (or any error) as the API's detail; role=alert so screen readers announce it.
export function ErrorBox({ error, onDismiss }) {
  if (!error) return null;
  const status = error.status ? `${error.status}: ` : "";
  return html`<div class="error" role="alert">
    <pre class="detail">${status}${error.message || String(error)}</pre>
    ${onDismiss && html`<button type="button" class="link" onClick=${onDismiss}>Dismiss</button>`}
  </div>`;
}

export function Progress({ value, label }) {
  const pct = Math.round((value || 0) * 100);
  return html`<div class="progress" role="progressbar" aria-label=${label} aria-valuemin="0" aria-valuemax="100"
    aria-valuenow=${pct}><div class="bar" style=${`width:${pct}%`}></div><span>${pct}%</span></div>`;
}

export const StatusBadge = ({ status }) => html`<span class=${`badge ${status}`}>${status}</span>`;

export function Pager({ total, limit, offset, onOffset }) {
  if (total <= limit) return null;
  const last = Math.max(0, Math.floor((total - 1) / limit) * limit);
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${offset <= 0} onClick=${() => onOffset(Math.max(0, offset - limit))}>
      Newer
    </button>
    <span>${offset + 1}–${Math.min(total, offset + limit)} of ${total}</span>
    <button type="button" disabled=${offset >= last} onClick=${() => onOffset(offset + limit)}>Older</button>
  </nav>`;
}

// Calls `load(signal)` now and then again `every(result)` ms after each answer (null: stop), while the
// page is shown; restarts when `deps` change. Returns [data, error, reload].
export function usePoll(load, every, deps) {
  const [state, setState] = useState({ data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    let timer = null;
    const run = async () => {
      let wait;
      try {
        const data = await load(ctl.signal);
        if (ctl.signal.aborted) return;
        setState({ data, error: null });
        wait = every(data);
      } catch (error) {
        if (ctl.signal.aborted || error.name === "AbortError") return;
        setState((s) => ({ data: s.data, error }));
        wait = 5000;
      }
      if (wait !== null) timer = setTimeout(() => (document.hidden ? onVisible() : run()), wait);
    };
    const onVisible = () =>
      document.addEventListener("visibilitychange", function resume() {
        document.removeEventListener("visibilitychange", resume);
        if (!ctl.signal.aborted) run();
      });
    run();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return [state.data, state.error, () => setTick((t) => t + 1)];
}

// One ECharts instance bound to a <div>: option replaced on change (merged into the old one with `merge`, which
// keeps the user's zoom while live data arrives), resized with its box, disposed on unmount. `onClick` gets
// ECharts' click events (a point's params). `data-rendered` is set once ECharts has drawn (what the browser
// tests wait for).
export function Chart({ option, name, label, height = 380, merge = false, onClick }) {
  const box = useRef(null);
  const chart = useRef(null);
  const click = useRef(onClick);
  click.current = onClick;
  useEffect(() => {
    const c = echarts.init(box.current, null, { renderer: "canvas" });
    chart.current = c;
    c.on("finished", () => box.current && (box.current.dataset.rendered = "true"));
    c.on("click", (params) => click.current?.(params));
    const ro = new ResizeObserver(() => c.resize());
    ro.observe(box.current);
    return () => {
      ro.disconnect();
      c.dispose();
    };
  }, []);
  useEffect(() => {
    if (!option) return;
    box.current.dataset.rendered = "false";
    chart.current.setOption(option, merge ? { replaceMerge: ["series"] } : { notMerge: true });
  }, [option]);
  return html`<div ref=${box} class="chart" data-chart=${name} role="img" aria-label=${label}
    style=${`height:${height}px`}></div>`;
}

// Tabs over a few panels (the homology dimensions): arrow keys move between them.
export function Tabs({ labels, selected, onSelect, label }) {
  const onKey = (e) => {
    const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!d) return;
    const next = (selected + d + labels.length) % labels.length;
    onSelect(next);
    e.currentTarget.parentElement.children[next]?.focus();
  };
  return html`<div class="tabs" role="tablist" aria-label=${label}>
    ${labels.map(
      (l, i) => html`<button type="button" role="tab" aria-selected=${i === selected} tabindex=${i === selected ? 0 : -1}
        onClick=${() => onSelect(i)} onKeyDown=${onKey}>${l}</button>`,
    )}
  </div>`;
}
