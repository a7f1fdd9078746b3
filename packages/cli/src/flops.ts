/** A problem shape, as `umfa bench` sweeps it. */
export interface Shape {
  batch: number;
  heads: number;
  kvHeads: number;
  seqlenQ: number;
  seqlenK: number;
  headDim: number;
  causal: boolean;
}

export type Direction = 'fwd' | 'bwd';

/**
 * FLOPs by FlashAttention's convention: forward 4·B·H·Nq·Nk·D (two matmuls), halved when causal;
 * backward 2.5× forward. (Causal halving is the convention for square problems; it is used as is
 * for every shape so that figures compare with published ones.)
 */
export function attentionFlops(s: Shape, direction: Direction): number {
  const fwd = (4 * s.batch * s.heads * s.seqlenQ * s.seqlenK * s.headDim) / (s.causal ? 2 : 1);
  return direction === 'fwd' ? fwd : 2.5 * fwd;
}
