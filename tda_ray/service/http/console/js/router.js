// Hash routes ("#/jobs/ID?x=1"): the server only ever serves "/", so any link works offline and on reload.
import { useEffect, useState } from "preact/hooks";

export function parseHash(hash = location.hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "data", args: parts.slice(1), query: new URLSearchParams(query) };
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const onChange = () => setRoute(parseHash());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

export const href = (...parts) => "#/" + parts.map(encodeURIComponent).join("/");

export function go(...parts) {
  location.hash = href(...parts);
}
