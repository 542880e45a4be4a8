// The job form, read from the OpenAPI schema of POST /v1/jobs (which the server derives from its algorithm
// registry): one variant per algorithm, one field per parameter, so new ones appear by themselves.
import { html } from "./components.js";

function resolve(doc, schema) {
  let s = schema;
  while (s && s.$ref) s = s.$ref.split("/").slice(1).reduce((node, key) => node[key], doc);
  if (s && s.allOf && s.allOf.length === 1) return resolve(doc, { ...s, ...s.allOf[0], allOf: undefined });
  return s;
}

// Each alternative of a field's type: {kind: "integer" | "number" | "string" | "boolean" | "null" | "const"}.
function alternatives(doc, schema) {
  const s = resolve(doc, schema);
  const options = s.anyOf || s.oneOf;
  if (options) return options.flatMap((o) => alternatives(doc, o));
  if ("const" in s) return [{ kind: "const", value: s.const }];
  if (s.enum) return s.enum.map((value) => ({ kind: "const", value }));
  return [{ kind: s.type || "string", min: s.minimum ?? s.exclusiveMinimum, max: s.maximum ?? s.exclusiveMaximum }];
}

function field(doc, name, schema, required) {
  const s = resolve(doc, schema);
  const alts = alternatives(doc, s);
  return {
    name,
    label: s.title || name,
    help: s.description || "",
    required,
    default: "default" in s ? s.default : alts.some((a) => a.kind === "null") ? null : undefined,
    alts,
  };
}

// [{algorithm, title, description, fields: [...], top: [...]}] from the OpenAPI document.
export function jobVariants(doc) {
  const body = doc.paths["/v1/jobs"].post.requestBody.content["application/json"].schema;
  const root = resolve(doc, body);
  const variants = root.oneOf || root.anyOf || [root];
  return variants.map((v) => {
    const s = resolve(doc, v);
    const alg = resolve(doc, s.properties.algorithm);
    const algorithm = alg.const ?? alg.default ?? (alg.enum || [])[0];
    const params = resolve(doc, s.properties.params || { properties: {} });
    const req = new Set(params.required || []);
    const topReq = new Set(s.required || []);
    return {
      algorithm,
      title: s.title || algorithm,
      description: s.description || "",
      fields: Object.entries(params.properties || {}).map(([n, p]) => field(doc, n, p, req.has(n))),
      top: Object.entries(s.properties)
        .filter(([n]) => n !== "algorithm" && n !== "params")
        .map(([n, p]) => field(doc, n, p, topReq.has(n))),
    };
  });
}

// A field filled with `value` (null: none). "A number or an integer" (window sizes) is one number field: the
// server tells which it needs where it matters (events count in whole numbers).
function filled(f, value) {
  const hasNumber = f.alts.some((a) => a.kind === "number");
  const alts = f.alts.filter((a) => !(hasNumber && a.kind === "integer"));
  return { ...f, alts, default: value ?? null };
}

// The stream spec form, read from the OpenAPI schema of PUT /v1/streams/{source_id}: one part per object
// (window, embedding, vector, scoring) with a field per property, and parts of one field for the rest
// (maxdim), each filled with the current spec's value.
export function specParts(doc, spec) {
  const body = doc.paths["/v1/streams/{source_id}"].put.requestBody.content["application/json"].schema;
  const root = resolve(doc, body);
  return Object.entries(root.properties).map(([name, p]) => {
    const s = resolve(doc, p);
    if (s.properties) {
      const fields = Object.entries(s.properties).map(([n, q]) => filled(field(doc, n, q, false), spec[name]?.[n]));
      return { name, title: name, fields };
    }
    return { name, title: null, fields: [filled(field(doc, name, p, false), spec[name])] };
  });
}

// One type, maybe nullable (e.g. threshold: a number or none): one input, left empty for none.
function isSimple(f) {
  const typed = f.alts.filter((a) => a.kind !== "null" && a.kind !== "const");
  return typed.length === 1 && f.alts.length - typed.length <= 1 && f.alts.every((a) => a.kind !== "const");
}

// What a field's widget holds: {choice: the index of the alternative chosen, text: what is typed}.
export function initialValue(f) {
  const d = f.default;
  const alts = f.alts;
  if (isSimple(f)) {
    const text = d === null || d === undefined ? "" : typeof d === "boolean" ? d : String(d);
    return { choice: alts.findIndex((a) => a.kind !== "null"), text };
  }
  if (d === null || d === undefined) {
    const nul = alts.findIndex((a) => a.kind === "null");
    return { choice: nul >= 0 ? nul : 0, text: "" };
  }
  const c = alts.findIndex((a) => a.kind === "const" && a.value === d);
  if (c >= 0) return { choice: c, text: "" };
  const t = alts.findIndex((a) => a.kind !== "const" && a.kind !== "null");
  return { choice: Math.max(t, 0), text: typeof d === "boolean" ? d : String(d) };
}

// The value sent: null, a constant, or the text parsed as the chosen type. Throws naming the field.
export function valueOf(f, v) {
  const alt = f.alts[v.choice];
  if (alt.kind === "null") return null;
  if (alt.kind === "const") return alt.value;
  if (alt.kind === "boolean") return Boolean(v.text);
  const text = String(v.text).trim();
  if (text === "" && f.alts.some((a) => a.kind === "null")) return null;
  if (alt.kind === "integer" || alt.kind === "number") {
    if (text === "") throw new Error(`${f.label}: a number is needed`);
    // Sent as typed; the server checks it and its message names the field.
    const n = Number(text);
    return Number.isNaN(n) ? text : n;
  }
  return text;
}

const KIND_LABEL = { integer: "an integer", number: "a number", string: "text", boolean: "yes/no" };
const altLabel = (a) => (a.kind === "null" ? "none" : a.kind === "const" ? String(a.value) : KIND_LABEL[a.kind] || a.kind);

// One parameter: an input, or a choice of alternatives (e.g. landmarks: none / auto / a count) and an input.
export function FieldInput({ f, value, onChange, idPrefix }) {
  const id = `${idPrefix}-${f.name}`;
  const alt = f.alts[value.choice];
  const inputFor = (a, labelled) => {
    if (a.kind === "boolean") {
      return html`<input id=${id} type="checkbox" checked=${Boolean(value.text)} aria-describedby=${`${id}-help`}
        onChange=${(e) => onChange({ ...value, text: e.target.checked })} />`;
    }
    const numeric = a.kind === "integer" || a.kind === "number";
    return html`<input id=${labelled ? id : `${id}-value`} type=${numeric ? "number" : "text"} inputmode=${numeric ? "decimal" : undefined}
      step=${a.kind === "integer" ? 1 : "any"} min=${a.min} value=${value.text}
      placeholder=${f.alts.some((x) => x.kind === "null") ? "none" : ""} aria-describedby=${`${id}-help`}
      aria-label=${labelled ? undefined : `${f.label} value`}
      onInput=${(e) => onChange({ ...value, text: e.target.value })} />`;
  };
  let control;
  if (isSimple(f)) {
    control = inputFor(alt, true);
  } else {
    control = html`<span class="choice">
      <select id=${id} aria-describedby=${`${id}-help`} onChange=${(e) => onChange({ ...value, choice: Number(e.target.value) })}>
        ${f.alts.map((a, i) => html`<option value=${i} selected=${i === value.choice}>${altLabel(a)}</option>`)}
      </select>
      ${alt.kind !== "null" && alt.kind !== "const" && inputFor(alt, false)}
    </span>`;
  }
  return html`<div class="field" data-field=${f.name}>
    <label for=${id}>${f.label}${f.required ? " *" : ""}</label>
    ${control}
    <small id=${`${id}-help`} class="muted">${f.help}</small>
  </div>`;
}
