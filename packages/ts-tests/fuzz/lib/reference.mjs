// Attention in float64, written from the header's description of the semantics (include/umfa.h,
// umfa_attention_options) and independent of the library: the oracle for small calls.
//
// Tensors are dense Float64Arrays in the layout [rows, heads, dim]: BSHD [batch, seqlen, ...]
// flattens to rows = batch * seqlen, varlen THD is already that. A problem lists its sequences as
// segments of rows; rows that belong to no segment (varlen rows after the last sequence) get
// out = 0, lse = -inf and zero gradients.

/**
 * @typedef {object} Problem
 * @property {{ batch: number, q0: number, qLen: number, k0: number, kLen: number }[]} segments
 * @property {number} rowsQ
 * @property {number} rowsK
 * @property {number} hq
 * @property {number} hkv
 * @property {number} d - head dim of q and k
 * @property {number} dv - head dim of v and out
 * @property {Float64Array} q
 * @property {Float64Array} k
 * @property {Float64Array} v
 * @property {number} maskMode - 0 none, 1 causal top-left, 2 causal bottom-right
 * @property {number} scale - the scale in effect (0 already replaced by 1/sqrt(d))
 * @property {number} softcap - 0 = off
 * @property {[number, number] | null} window
 * @property {((batch: number, h: number) => number) | null} slope - ALiBi
 * @property {((batch: number, h: number, i: number, j: number) => number) | null} mask
 * @property {boolean} maskIsBool
 */

/** Scores of query row i (local to its segment) against every key of the segment; -inf = masked. */
function scoreRow(p, seg, h, i, raw, s) {
  const { d, hq, hkv } = p;
  const kvh = Math.floor(h / (hq / hkv));
  const offset = p.maskMode === 1 ? 0 : seg.kLen - seg.qLen;
  const qBase = ((seg.q0 + i) * hq + h) * d;
  for (let j = 0; j < seg.kLen; j++) {
    let visible = true;
    if (p.maskMode === 1 && j > i) visible = false;
    if (p.maskMode === 2 && j > i + seg.kLen - seg.qLen) visible = false;
    if (p.window !== null) {
      const [left, right] = p.window;
      const dist = j - (i + offset);
      if (left >= 0 && dist < -left) visible = false;
      if (right >= 0 && dist > right) visible = false;
    }
    let bias = 0;
    if (p.mask !== null) {
      const m = p.mask(seg.batch, h, i, j);
      if (p.maskIsBool) {
        if (m === 0) visible = false;
      } else {
        bias = m;
      }
    }
    if (!visible) {
      raw[j] = 0;
      s[j] = -Infinity;
      continue;
    }
    const kBase = ((seg.k0 + j) * hkv + kvh) * d;
    let dot = 0;
    for (let c = 0; c < d; c++) dot += p.q[qBase + c] * p.k[kBase + c];
    const r = dot * p.scale;
    raw[j] = r;
    let x = p.softcap > 0 ? p.softcap * Math.tanh(r / p.softcap) : r;
    if (p.slope !== null) x += p.slope(seg.batch, h) * -Math.abs(i + offset - j);
    s[j] = x + bias;
  }
}

/** Softmax of one row in place; returns its log-sum-exp (-inf when every key is masked). */
function softmaxRow(s, n) {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (s[j] > max) max = s[j];
  if (max === -Infinity) {
    s.fill(0, 0, n);
    return -Infinity;
  }
  let sum = 0;
  for (let j = 0; j < n; j++) {
    s[j] = Math.exp(s[j] - max);
    sum += s[j];
  }
  for (let j = 0; j < n; j++) s[j] /= sum;
  return max + Math.log(sum);
}

/**
 * Forward attention.
 *
 * @param {Problem} p
 * @returns {{ out: Float64Array, lse: Float64Array }} out [rowsQ, hq, dv]; lse [rowsQ, hq]
 */
export function forward(p) {
  const { hq, hkv, dv } = p;
  const out = new Float64Array(p.rowsQ * hq * dv);
  const lse = new Float64Array(p.rowsQ * hq).fill(-Infinity);
  for (const seg of p.segments) {
    const raw = new Float64Array(seg.kLen);
    const s = new Float64Array(seg.kLen);
    for (let h = 0; h < hq; h++) {
      const kvh = Math.floor(h / (hq / hkv));
      for (let i = 0; i < seg.qLen; i++) {
        scoreRow(p, seg, h, i, raw, s);
        const row = seg.q0 + i;
        lse[row * hq + h] = softmaxRow(s, seg.kLen);
        const oBase = (row * hq + h) * dv;
        for (let j = 0; j < seg.kLen; j++) {
          if (s[j] === 0) continue;
          const vBase = ((seg.k0 + j) * hkv + kvh) * dv;
          for (let c = 0; c < dv; c++) out[oBase + c] += s[j] * p.v[vBase + c];
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Backward attention: the gradients of sum(out * dout) with respect to q, k and v.
 *
 * @param {Problem} p
 * @param {Float64Array} dout - [rowsQ, hq, dv]
 * @returns {{ dq: Float64Array, dk: Float64Array, dv: Float64Array }}
 */
export function backward(p, dout) {
  const { hq, hkv, d, dv } = p;
  const dq = new Float64Array(p.rowsQ * hq * d);
  const dk = new Float64Array(p.rowsK * hkv * d);
  const dvv = new Float64Array(p.rowsK * hkv * dv);
  const { out } = forward(p);
  for (const seg of p.segments) {
    const raw = new Float64Array(seg.kLen);
    const s = new Float64Array(seg.kLen);
    for (let h = 0; h < hq; h++) {
      const kvh = Math.floor(h / (hq / hkv));
      for (let i = 0; i < seg.qLen; i++) {
        scoreRow(p, seg, h, i, raw, s);
        if (softmaxRow(s, seg.kLen) === -Infinity) continue;
        const row = seg.q0 + i;
        const oBase = (row * hq + h) * dv;
        const qBase = (row * hq + h) * d;
        let rowDot = 0;
        for (let c = 0; c < dv; c++) rowDot += dout[oBase + c] * out[oBase + c];
        for (let j = 0; j < seg.kLen; j++) {
          const pj = s[j];
          if (pj === 0) continue;
          const vBase = ((seg.k0 + j) * hkv + kvh) * dv;
          const kBase = ((seg.k0 + j) * hkv + kvh) * d;
          let dp = 0;
          for (let c = 0; c < dv; c++) {
            dvv[vBase + c] += pj * dout[oBase + c];
            dp += dout[oBase + c] * p.v[vBase + c];
          }
          let ds = pj * (dp - rowDot);
          if (p.softcap > 0) {
            const t = Math.tanh(raw[j] / p.softcap);
            ds *= 1 - t * t;
          }
          ds *= p.scale;
          for (let c = 0; c < d; c++) {
            dq[qBase + c] += ds * p.k[kBase + c];
            dk[kBase + c] += ds * p.q[qBase + c];
          }
        }
      }
    }
  }
  return { dq, dk, dv: dvv };
}
