// What the result and compare pages compute from a result's pairs (no server round trip needed).
// A pair is [birth, death]; death null means the class never dies (essential).

export const isEssential = (pair) => pair[1] === null || pair[1] === undefined;

// The largest finite value of the diagrams: births and finite deaths. 1 for a diagram of only zeros.
export function finiteTop(diagrams) {
  let top = 0;
  for (const pairs of diagrams) {
    for (const [b, d] of pairs) {
      top = Math.max(top, b, isEssential([b, d]) ? b : d);
    }
  }
  return top > 0 ? top : 1;
}

// Where essential classes are drawn: a line a little above every finite value.
export const infinityLevel = (top) => top * 1.1;

// beta_k(t) = #{pairs with birth <= t < death}, a step function given at its jumps: [[t0, b0], [t1, b1], ...]
// holds b_i on [t_i, t_{i+1}); the last value (the essential classes) holds up to `until`.
export function bettiCurve(pairs, until) {
  const delta = new Map();
  const bump = (t, by) => delta.set(t, (delta.get(t) || 0) + by);
  for (const [b, d] of pairs) {
    bump(b, 1);
    if (!isEssential([b, d])) bump(d, -1);
  }
  const times = [...delta.keys()].sort((x, y) => x - y);
  const curve = [];
  let value = 0;
  for (const t of times) {
    value += delta.get(t);
    curve.push([t, value]);
  }
  if (!curve.length || curve[0][0] > 0) curve.unshift([0, 0]);
  if (until > curve[curve.length - 1][0]) curve.push([until, value]);
  return curve;
}

// Per dimension: pairs, essential classes, total finite persistence and the largest finite bar.
export function describe(pairs) {
  let essential = 0;
  let total = 0;
  let longest = 0;
  for (const [b, d] of pairs) {
    if (isEssential([b, d])) essential++;
    else {
      total += d - b;
      longest = Math.max(longest, d - b);
    }
  }
  return { pairs: pairs.length, essential, total, longest };
}
