import { UmfaError } from './errors.js';
import { Status } from './status.js';
import {
  allocData,
  Float16ArrayCtor,
  fromFloat32,
  isFloat16Array,
  toFloat32Array,
  type DType,
  type DTypeData,
} from './dtype.js';

/**
 * A strided view of host memory: the typed array holding the elements, their dtype, the logical
 * shape and (optionally) strides in elements. Without `strides` the tensor is dense row-major.
 *
 * Attention tensors use FlashAttention's logical layout `[batch, seqlen, heads, head_dim]`
 * (BSHD); use {@link bhsd} to describe PyTorch-style `[batch, heads, seqlen, head_dim]` memory
 * without copying. A stride of 0 broadcasts a dimension (inputs only).
 *
 * The typed array is handed to the native core as is: it is never copied.
 */
export interface Tensor<D extends ArrayBufferView = ArrayBufferView> {
  /** The elements (see {@link DType} for which typed array goes with which dtype). */
  readonly data: D;
  /** The element type. */
  readonly dtype: DType;
  /** Extent of each dimension (rank 0..4). */
  readonly shape: readonly number[];
  /** Distance in elements between neighbours along each dimension; dense row-major if omitted. */
  readonly strides?: readonly number[] | undefined;
}

/**
 * The result of a forward call: the attention output and, when asked for, the log-sum-exp.
 * `D` and `L` are the typed arrays of their data (see `ForwardResult` for how a call's
 * arguments determine them).
 */
export interface AttentionResult<D extends ArrayBufferView = ArrayBufferView, L extends ArrayBufferView = ArrayBufferView> {
  /** `[batch, seqlen_q, heads_q, head_dim_v]` (or `[total_q, heads_q, head_dim_v]` for varlen). */
  out: Tensor<D>;
  /** `f32` `[batch, heads_q, seqlen_q]` (or `[heads_q, total_q]`), natural-log LSE per row. */
  lse?: Tensor<L>;
}

/** The result of a forward call that asked for the log-sum-exp (`returnLse: true` or `lse`). */
export interface AttentionResultWithLse<D extends ArrayBufferView = ArrayBufferView, L extends ArrayBufferView = Float32Array>
  extends AttentionResult<D, L> {
  /** `f32` `[batch, heads_q, seqlen_q]` (or `[heads_q, total_q]`), natural-log LSE per row. */
  lse: Tensor<L>;
}

/**
 * The result of a backward call: the gradients with respect to q, k and v, whose data are typed
 * arrays `Q`, `K` and `V` (see `BackwardResult`).
 */
export interface AttentionGradients<
  Q extends ArrayBufferView = ArrayBufferView,
  K extends ArrayBufferView = ArrayBufferView,
  V extends ArrayBufferView = ArrayBufferView,
> {
  /** ∂L/∂q, shaped like q. */
  dq: Tensor<Q>;
  /** ∂L/∂k, shaped like k (summed over the query heads sharing each key head). */
  dk: Tensor<K>;
  /** ∂L/∂v, shaped like v. */
  dv: Tensor<V>;
}

/** Number of elements of a shape (1 for rank 0). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Dense row-major strides (in elements) of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i] as number;
  }
  return strides;
}

/** The strides of `t`: its own, or dense row-major ones. */
export function stridesOf(t: Tensor): readonly number[] {
  return t.strides ?? contiguousStrides(t.shape);
}

/** True when `t` is dense row-major (its strides, if given, equal the row-major ones). */
export function isContiguous(t: Tensor): boolean {
  if (t.strides === undefined) return true;
  const dense = contiguousStrides(t.shape);
  for (let i = 0; i < t.shape.length; i++) {
    if ((t.shape[i] as number) > 1 && t.strides[i] !== dense[i]) return false;
  }
  return true;
}

/**
 * The dtype a typed array implies: `Float32Array` → f32, `Float16Array` → f16, `Uint8Array` →
 * bool, `Int32Array` → i32. A `Uint16Array` is ambiguous (f16 or bf16 bits) and needs an explicit
 * dtype.
 *
 * @throws UmfaError (`UNSUPPORTED_DTYPE`) when the array type implies no dtype
 */
export function inferDType(data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return 'f32';
  if (isFloat16Array(data)) return 'f16';
  if (data instanceof Uint8Array) return 'bool';
  if (data instanceof Int32Array) return 'i32';
  const what = data instanceof Uint16Array ? 'a Uint16Array (f16 or bf16?)' : data.constructor.name;
  throw new UmfaError(Status.UNSUPPORTED_DTYPE, `cannot infer a dtype from ${what}; pass dtype explicitly`);
}

/** Options of {@link tensor}. */
export interface TensorInit {
  /** The element type; inferred from the typed array when omitted (see {@link inferDType}). */
  dtype?: DType;
  /** Strides in elements; dense row-major when omitted. */
  strides?: readonly number[];
}

/**
 * Describes `data` as a tensor of `shape` (no copy).
 *
 * @example
 * ```ts
 * const q = tensor(new Float32Array(2 * 128 * 8 * 64), [2, 128, 8, 64]);
 * const k = tensor(f32ToBf16(values), [2, 128, 8, 64], { dtype: 'bf16' });
 * ```
 */
export function tensor<D extends ArrayBufferView>(data: D, shape: readonly number[], init: TensorInit = {}): Tensor<D> {
  const dtype = init.dtype ?? inferDType(data);
  const t: { data: D; dtype: DType; shape: readonly number[]; strides?: readonly number[] } = {
    data,
    dtype,
    shape: [...shape],
  };
  if (init.strides !== undefined) t.strides = [...init.strides];
  return t;
}

/**
 * A BSHD tensor (`[batch, seqlen, heads, head_dim]`, dense): FlashAttention's layout.
 *
 * @param data - `batch·seqlen·heads·head_dim` elements in BSHD order
 * @param shape - `[batch, seqlen, heads, head_dim]`
 * @param dtype - the element type; inferred from `data` when omitted
 */
export function bshd<D extends ArrayBufferView>(
  data: D,
  shape: readonly [number, number, number, number],
  dtype?: DType,
): Tensor<D> {
  return tensor(data, shape, dtype === undefined ? {} : { dtype });
}

/**
 * A view of dense BHSD memory (`[batch, heads, seqlen, head_dim]`, PyTorch's layout) in umfa's
 * logical BSHD order, by permuting strides: no copy. The result has shape
 * `[batch, seqlen, heads, head_dim]`.
 *
 * @param data - `batch·heads·seqlen·head_dim` elements in BHSD order
 * @param shape - `[batch, heads, seqlen, head_dim]` (the memory order)
 * @param dtype - the element type; inferred from `data` when omitted
 */
export function bhsd<D extends ArrayBufferView>(
  data: D,
  shape: readonly [number, number, number, number],
  dtype?: DType,
): Tensor<D> {
  const [b, h, s, d] = shape;
  return tensor(data, [b, s, h, d], {
    ...(dtype === undefined ? {} : { dtype }),
    strides: [h * s * d, d, s * d, 1],
  });
}

/**
 * Allocates a dense, zero-filled tensor.
 *
 * @param dtype - the element type
 * @param shape - the shape
 * @param preferFloat16Array - for f16, use the runtime's `Float16Array` when it has one
 */
export function zeros<T extends DType>(dtype: T, shape: readonly number[], preferFloat16Array?: false): Tensor<DTypeData[T]>;
/**
 * Allocates a dense, zero-filled tensor; with `preferFloat16Array`, f16 data is a `Float16Array`
 * where the runtime has one.
 */
export function zeros(dtype: DType, shape: readonly number[], preferFloat16Array?: boolean): Tensor;
export function zeros(dtype: DType, shape: readonly number[], preferFloat16Array = false): Tensor {
  return { data: allocData(dtype, numel(shape), preferFloat16Array), dtype, shape: [...shape] };
}

/**
 * Gathers the logical elements of `t` (following its strides) in row-major order as a
 * `Float32Array`, converting from its dtype.
 */
export function toFloat32(t: Tensor): Float32Array {
  const shape = t.shape;
  const strides = stridesOf(t);
  const n = numel(shape);
  const all = toFloat32Array(t.data, t.dtype);
  if (isContiguous(t) && all.length >= n) return all.length === n ? all : all.slice(0, n);
  const out = new Float32Array(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let r = 0; r < rank; r++) off += (idx[r] as number) * (strides[r] as number);
    out[i] = all[off] as number;
    for (let r = rank - 1; r >= 0; r--) {
      idx[r] = (idx[r] as number) + 1;
      if ((idx[r] as number) < (shape[r] as number)) break;
      idx[r] = 0;
    }
  }
  return out;
}

/**
 * Builds a tensor of `dtype` from numbers in row-major order (converting f32 → f16/bf16 bits as
 * needed).
 */
export function fromValues<T extends DType = 'f32'>(values: ArrayLike<number>, shape: readonly number[], dtype?: T): Tensor<DTypeData[T]>;
export function fromValues(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  const data = dtype === 'f32' && values instanceof Float32Array ? values : fromFloat32(values, dtype);
  return { data, dtype, shape: [...shape] };
}

/** True when the runtime provides `Float16Array`. */
export const hasFloat16Array: boolean = Float16ArrayCtor !== undefined;
