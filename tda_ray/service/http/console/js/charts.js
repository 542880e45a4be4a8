// ECharts options for persistence diagrams, barcodes and Betti curves, and for stream scores and window vectors.
// Each point keeps its pair in `pair` ([birth, death], death null when essential): the tooltip reads it,
// and so can anyone holding the chart (the browser tests compare it with GET /v1/jobs/{id}/result).
import * as echarts from "echarts";
import { bettiCurve, finiteTop, infinityLevel, isEssential } from "./tda.js";
import { num } from "./format.js";

const esc = echarts.format.encodeHTML;
// Colour-blind-safe palette (Okabe–Ito), one colour per homology dimension.
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"];

function pairTip(title, pair) {
  const [b, d] = pair;
  const persistence = isEssential(pair) ? "∞ (essential)" : num(d - b);
  return `<b>${esc(title)}</b><br>birth ${num(b)}<br>death ${isEssential(pair) ? "∞" : num(d)}<br>persistence ${persistence}`;
}

const tooltip = { trigger: "item", confine: true, formatter: (p) => pairTip(p.seriesName, p.data.pair) };
const big = (n) => n > 4000; // ECharts' large mode draws thousands of points in one pass

// Points of one diagram as two scatter series (finite, essential on the infinity line).
function diagramSeries(name, pairs, level, style) {
  const finite = [];
  const essential = [];
  for (const p of pairs) {
    if (isEssential(p)) essential.push({ value: [p[0], level], pair: [p[0], null] });
    else finite.push({ value: [p[0], p[1]], pair: [p[0], p[1]] });
  }
  const common = { type: "scatter", name, itemStyle: { color: style.color, opacity: 0.8 } };
  return [
    { ...common, id: `${style.id}`, data: finite, symbol: style.symbol, symbolSize: 7, large: big(finite.length) },
    { ...common, id: `${style.id}-essential`, data: essential, symbol: "triangle", symbolSize: 11, z: 3 },
  ];
}

function frame(level) {
  const max = level * 1.04;
  return {
    animation: false,
    aria: { enabled: true },
    tooltip,
    legend: { top: 0 },
    grid: { left: 56, right: 24, top: 40, bottom: 48, containLabel: true },
    toolbox: { right: 8, feature: { dataZoom: {}, restore: {} } },
    xAxis: { type: "value", name: "birth", nameLocation: "middle", nameGap: 28, min: 0, max, axisLabel: { formatter: num, showMaxLabel: false } },
    yAxis: { type: "value", name: "death", nameLocation: "middle", nameGap: 44, min: 0, max, axisLabel: { formatter: num, showMaxLabel: false } },
  };
}

// The diagonal, and the dashed infinity line (labelled ∞) where the essential classes sit.
function guides(level) {
  const line = { type: "line", silent: true, symbol: "none", tooltip: { show: false }, z: 1 };
  return [
    { ...line, id: "diagonal", lineStyle: { color: "#888", width: 1 }, data: [[0, 0], [level, level]] },
    {
      ...line,
      id: "infinity",
      lineStyle: { color: "#555", width: 1, type: "dashed" },
      endLabel: { show: true, formatter: "∞", fontSize: 14 },
      data: [[0, level], [level * 1.04, level]],
    },
  ];
}

// One result: every dimension in one diagram (the legend toggles them).
export function diagramOption(diagrams) {
  const top = finiteTop(diagrams);
  const level = infinityLevel(top);
  const series = [...guides(level)];
  diagrams.forEach((pairs, k) => {
    series.push(...diagramSeries(`H${k}`, pairs, level, { id: `H${k}`, color: PALETTE[k % PALETTE.length], symbol: "circle" }));
  });
  return { ...frame(level), series };
}

// Two results overlaid in one dimension: A as circles, B as diamonds.
export function overlayOption(a, b, k, names) {
  const top = finiteTop([a[k] || [], b[k] || []]);
  const level = infinityLevel(top);
  return {
    ...frame(level),
    series: [
      ...guides(level),
      ...diagramSeries(`A: ${names[0]} H${k}`, a[k] || [], level, { id: "A", color: PALETTE[0], symbol: "circle" }),
      ...diagramSeries(`B: ${names[1]} H${k}`, b[k] || [], level, { id: "B", color: PALETTE[1], symbol: "diamond" }),
    ],
  };
}

// Bars of one dimension, longest first; essential bars run to the infinity line and end in an arrow.
export function barcodeOption(pairs, k, top) {
  const level = infinityLevel(top);
  const bars = pairs
    .map((p) => ({ pair: [p[0], isEssential(p) ? null : p[1]] }))
    .sort((x, y) => (y.pair[1] ?? Infinity) - y.pair[0] - ((x.pair[1] ?? Infinity) - x.pair[0]) || x.pair[0] - y.pair[0]);
  const data = bars.map((bar, i) => ({ value: [bar.pair[0], bar.pair[1] ?? level, i], pair: bar.pair }));
  const color = PALETTE[k % PALETTE.length];
  return {
    animation: false,
    aria: { enabled: true },
    tooltip,
    grid: { left: 40, right: 24, top: 36, bottom: 48, containLabel: true },
    toolbox: { right: 8, feature: { dataZoom: {}, restore: {} } },
    xAxis: { type: "value", name: "scale", nameLocation: "middle", nameGap: 28, min: 0, max: level * 1.04, axisLabel: { formatter: num, showMaxLabel: false } },
    yAxis: { type: "value", inverse: true, min: -0.5, max: Math.max(bars.length - 0.5, 0.5), show: false },
    dataZoom: [{ type: "inside", yAxisIndex: 0, filterMode: "none" }],
    series: [
      {
        type: "custom",
        id: `H${k}-bars`,
        name: `H${k}`,
        data,
        encode: { x: [0, 1], y: 2 },
        renderItem: (params, api) => {
          const start = api.coord([api.value(0), api.value(2)]);
          const end = api.coord([api.value(1), api.value(2)]);
          const height = Math.max(1, Math.min(10, api.size([0, 1])[1] * 0.7));
          const rect = { type: "rect", shape: { x: start[0], y: start[1] - height / 2, width: Math.max(1, end[0] - start[0]), height }, style: { fill: color } };
          if (data[params.dataIndex].pair[1] !== null) return rect;
          const tip = { type: "polygon", shape: { points: [[end[0], end[1] - height], [end[0] + height, end[1]], [end[0], end[1] + height]] }, style: { fill: color } };
          return { type: "group", children: [rect, tip] };
        },
      },
    ],
  };
}

// Betti curves of every dimension: step functions of the scale.
export function bettiOption(diagrams) {
  const top = finiteTop(diagrams);
  const until = infinityLevel(top);
  return {
    animation: false,
    aria: { enabled: true },
    legend: { top: 0 },
    tooltip: { trigger: "axis", valueFormatter: num },
    grid: { left: 40, right: 24, top: 40, bottom: 48, containLabel: true },
    xAxis: { type: "value", name: "scale", nameLocation: "middle", nameGap: 28, min: 0, max: until, axisLabel: { formatter: num, showMaxLabel: false } },
    yAxis: { type: "value", name: "Betti number", nameLocation: "middle", nameGap: 52, minInterval: 1 },
    series: diagrams.map((pairs, k) => ({
      type: "line",
      id: `betti-H${k}`,
      name: `H${k}`,
      step: "end",
      symbol: "none",
      color: PALETTE[k % PALETTE.length],
      data: bettiCurve(pairs, until),
    })),
  };
}

// A stream's window scores over event time (window ends): the score line (warm-up windows grey), the
// threshold as a dashed step line (a spec change may move it), alerts as red triangles. Points keep their
// window's `seq` (the page finds the record by it; the tests compare it with the API's).
function windowTip(r) {
  if (!r) return "";
  const head = `<b>window ${r.seq}</b>${r.alert ? " · <b>alert</b>" : r.warmup ? " · warm-up" : ""}`;
  const lines = [head, `${esc(r.window_start)} – ${esc(r.window_end)}`, `score ${num(r.score, 6)} (threshold ${num(r.threshold, 6)})`];
  for (const reason of r.reasons || []) lines.push(`${esc(reason.feature)}: z ${num(reason.z, 3)}`);
  return lines.join("<br>");
}

export function scoreOption(records) {
  const bySeq = new Map(records.map((r) => [r.seq, r]));
  const at = (r) => Date.parse(r.window_end);
  const point = (r) => ({ value: [at(r), r.score], seq: r.seq, ...(r.warmup ? { itemStyle: { color: "#9aa1ab" } } : {}) });
  return {
    animation: false,
    aria: { enabled: true },
    legend: { top: 0 },
    tooltip: { trigger: "item", confine: true, formatter: (p) => windowTip(bySeq.get(p.data?.seq)) },
    grid: { left: 48, right: 24, top: 40, bottom: 48, containLabel: true },
    toolbox: { right: 8, feature: { dataZoom: { yAxisIndex: "none" }, restore: {} } },
    dataZoom: [{ type: "inside", xAxisIndex: 0, filterMode: "none" }],
    xAxis: { type: "time", name: "event time (window end)", nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "value", name: "score", nameLocation: "middle", nameGap: 40, min: 0, max: 1 },
    series: [
      {
        type: "line",
        id: "score",
        name: "score",
        color: PALETTE[0],
        symbol: "circle",
        symbolSize: 5,
        showAllSymbol: true,
        lineStyle: { width: 1.5 },
        data: records.map(point),
      },
      {
        type: "line",
        id: "threshold",
        name: "threshold",
        color: PALETTE[1],
        step: "end",
        symbol: "none",
        silent: true,
        lineStyle: { type: "dashed", width: 1 },
        data: records.map((r) => ({ value: [at(r), r.threshold], seq: r.seq })),
      },
      {
        type: "scatter",
        id: "alerts",
        name: "alerts",
        color: "#b3261e",
        symbol: "triangle",
        symbolSize: 12,
        z: 4,
        data: records.filter((r) => r.alert).map((r) => ({ value: [at(r), r.score], seq: r.seq })),
      },
    ],
  };
}

// A window's vectorization: one block of bins per homology dimension (as many as its betti_k features),
// each drawn as a line over the bin index.
export function vectorOption(record) {
  const vector = record.vector || [];
  const dims = Object.keys(record.features || {}).filter((k) => /^betti_\d+$/.test(k)).length || 1;
  const bins = vector.length % dims === 0 ? vector.length / dims : vector.length;
  const blocks = bins === vector.length ? [vector] : Array.from({ length: dims }, (_, k) => vector.slice(k * bins, (k + 1) * bins));
  return {
    animation: false,
    aria: { enabled: true },
    legend: { top: 0 },
    tooltip: { trigger: "axis", valueFormatter: num },
    grid: { left: 40, right: 16, top: 36, bottom: 40, containLabel: true },
    xAxis: { type: "value", name: "bin", nameLocation: "middle", nameGap: 26, min: 0, max: Math.max(bins - 1, 1), minInterval: 1 },
    yAxis: { type: "value" },
    series: blocks.map((block, k) => ({
      type: "line",
      id: `vector-H${k}`,
      name: blocks.length > 1 ? `H${k}` : "vector",
      color: PALETTE[k % PALETTE.length],
      symbolSize: 4,
      data: block.map((v, i) => [i, v]),
    })),
  };
}
