/**
 * A float64 attention reference, written independently of the core, used by `umfa bench --quick`
 * to check each shape before timing it. Dense BSHD tensors; GQA by head grouping; FlashAttention's
 * bottom-right causal mask or PyTorch's top-left one. Straightforward two-pass softmax per row.
 */
export type CausalMode = 'none' | 'top-left' | 'bottom-right';

export interface ReferenceProblem {
  batch: number;
  seqlenQ: number;
  seqlenK: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  causal: CausalMode;
  /** Default 1/√headDim. */
  scale?: number;
}

export interface ReferenceResult {
  /** [batch, seqlenQ, heads, headDim]. */
  out: Float64Array;
  /** [batch, heads, seqlenQ], natural log; -Infinity for rows with no visible key. */
  lse: Float64Array;
}

/** q: [B, Nq, H, D]; k, v: [B, Nk, Hkv, D]; all dense row-major, values as the core sees them. */
export function referenceAttention(
  p: ReferenceProblem,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
): ReferenceResult {
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, heads: H, kvHeads: Hkv, headDim: D } = p;
  if (H % Hkv !== 0) throw new Error(`heads (${H}) must be a multiple of kv heads (${Hkv})`);
  const scale = p.scale ?? 1 / Math.sqrt(D);
  const group = H / Hkv;
  const out = new Float64Array(B * Nq * H * D);
  const lse = new Float64Array(B * H * Nq);
  const scores = new Float64Array(Nk);
  const acc = new Float64Array(D);
  const offset = p.causal === 'bottom-right' ? Nk - Nq : 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < Nq; i++) {
        const qBase = ((b * Nq + i) * H + h) * D;
        const last = p.causal === 'none' ? Nk - 1 : Math.min(Nk - 1, i + offset);
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          const kBase = ((b * Nk + j) * Hkv + hk) * D;
          let s = 0;
          for (let d = 0; d < D; d++) s += (q[qBase + d] as number) * (k[kBase + d] as number);
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        const lseAt = (b * H + h) * Nq + i;
        if (last < 0) {
          lse[lseAt] = -Infinity; // no visible key: out stays 0
          continue;
        }
        acc.fill(0);
        let sum = 0;
        for (let j = 0; j <= last; j++) {
          const w = Math.exp((scores[j] as number) - max);
          sum += w;
          const vBase = ((b * Nk + j) * Hkv + hk) * D;
          for (let d = 0; d < D; d++) acc[d] = (acc[d] as number) + w * (v[vBase + d] as number);
        }
        for (let d = 0; d < D; d++) out[qBase + d] = (acc[d] as number) / sum;
        lse[lseAt] = max + Math.log(sum);
      }
    }
  }
  return { out, lse };
}

/** Largest |a − e| and the largest excess over atol + rtol·|e| (≤ 0 means within tolerance). */
export function compare(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
): { maxAbsError: number; worstExcess: number; mismatches: number } {
  let maxAbsError = 0;
  let worstExcess = -Infinity;
  let mismatches = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    let excess: number;
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      excess = Object.is(a, e) || a === e ? -atol : Infinity;
      if (excess === Infinity) maxAbsError = Infinity;
    } else {
      const err = Math.abs(a - e);
      if (err > maxAbsError) maxAbsError = err;
      excess = err - (atol + rtol * Math.abs(e));
    }
    if (excess > 0) mismatches++;
    if (excess > worstExcess) worstExcess = excess;
  }
  return { maxAbsError, worstExcess: expected.length ? worstExcess : 0, mismatches };
}
