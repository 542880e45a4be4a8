// A stream's spec: shown as a form generated from the OpenAPI schema of PUT /v1/streams/{source_id} (so new
// spec fields appear by themselves), filled with the current spec; saving PUTs the parts filled in.
import { useEffect, useState } from "preact/hooks";
import { api, openApi } from "../api.js";
import { ErrorBox, html } from "../components.js";
import { FieldInput, initialValue, specParts, valueOf } from "../schemaform.js";

const streamPath = (source) => `v1/streams/${encodeURIComponent(source)}`;

// {part: {field: widget value}} for the form's state.
const widgets = (parts) =>
  Object.fromEntries(parts.map((p) => [p.name, Object.fromEntries(p.fields.map((f) => [f.name, initialValue(f)]))]));

// The PUT body: every field with a value (none: left out, so the default applies).
function bodyOf(parts, values) {
  const body = {};
  for (const part of parts) {
    const entries = part.fields
      .map((f) => [f.name, valueOf(f, values[part.name][f.name])])
      .filter(([, v]) => v !== null && v !== undefined);
    if (part.title) body[part.name] = Object.fromEntries(entries);
    else if (entries.length) body[part.name] = entries[0][1];
  }
  return body;
}

export function SpecForm({ source }) {
  const [stream, setStream] = useState(null);
  const [parts, setParts] = useState(null);
  const [values, setValues] = useState(null);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  const [busy, setBusy] = useState(false);
  const show = (doc, s) => {
    const p = specParts(doc, s.spec);
    setStream(s);
    setParts(p);
    setValues(widgets(p));
  };
  useEffect(() => {
    setSaved(null);
    setError(null);
    Promise.all([openApi(), api(streamPath(source))])
      .then(([doc, s]) => show(doc, s))
      .catch(setError);
  }, [source]);
  if (!parts) return html`<${ErrorBox} error=${error} />${!error && html`<p class="muted">Reading the spec…</p>`}`;
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    setBusy(true);
    try {
      const answer = await api(streamPath(source), { method: "PUT", json: bodyOf(parts, values) });
      show(await openApi(), answer);
      setSaved(answer.spec.version);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const set = (part, name) => (v) => setValues((all) => ({ ...all, [part]: { ...all[part], [name]: v } }));
  const { spec } = stream;
  return html`<form class="job-form spec-form" onSubmit=${submit} aria-labelledby="spec-title">
    <h2 id="spec-title">Spec</h2>
    <p class="muted" data-testid="spec-version">
      ${stream.default ? "The default spec (none set yet)" : `Version ${spec.version}`}; a new spec applies from the
      next window, after a new warm-up.
    </p>
    ${parts.map((part) => {
      const inputs = part.fields.map(
        (f) => html`<${FieldInput} key=${part.name + f.name} f=${f} value=${values[part.name][f.name]}
          idPrefix=${`spec-${part.name}`} onChange=${set(part.name, f.name)} />`,
      );
      return part.title ? html`<fieldset><legend>${part.title}</legend>${inputs}</fieldset>` : inputs;
    })}
    <${ErrorBox} error=${error} onDismiss=${() => setError(null)} />
    <p role="status" class="notice" hidden=${saved === null}>${saved !== null && `Saved: version ${saved}.`}</p>
    <button type="submit" class="primary" disabled=${busy}>${busy ? "Saving…" : "Save spec"}</button>
  </form>`;
}
