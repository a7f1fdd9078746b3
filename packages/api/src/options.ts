import type { DType } from './dtype.js';
import type { DeviceTensor } from './device.js';
import type { Tensor } from './tensor.js';

/**
 * Built-in masks (`umfa_attention_options.mask_mode`):
 * - `'none'`: no built-in mask;
 * - `'causal-top-left'`: PyTorch's `is_causal`, query i sees keys j ≤ i;
 * - `'causal-bottom-right'`: FlashAttention's causal, query i sees keys j ≤ i + seqlen_k − seqlen_q.
 *
 * A raw `UMFA_MASK_*` number is passed through unchanged (the core rejects unknown values).
 */
export type MaskMode = 'none' | 'causal-top-left' | 'causal-bottom-right' | number;

/**
 * A sliding window: keys visible to the left and right of the diagonal (negative = unbounded),
 * as FlashAttention's `window_size=(left, right)`.
 */
export type AttentionWindow = readonly [left: number, right: number] | { left?: number; right?: number };

/**
 * Every option of the C ABI's `umfa_attention_options`, in camelCase. All are optional: `{}`
 * means plain softmax attention with scale 1/√head_dim and no mask. Grouped-query attention
 * needs no option: it follows from k/v having fewer heads than q. Pass the same options to the
 * backward call as to the forward call.
 */
export interface AttentionOptions {
  /** Multiplies q·k (`softmax_scale`); default (or 0) = 1/√head_dim. */
  scale?: number;
  /** Built-in mask (`mask_mode`). See {@link MaskMode}. */
  maskMode?: MaskMode;
  /**
   * Shorthand for {@link AttentionOptions.maskMode}: `true` or `'bottom-right'` is
   * FlashAttention's causal mask, `'top-left'` is PyTorch's `is_causal`. When both `causal` and
   * `maskMode` are given they must agree.
   */
  causal?: boolean | 'top-left' | 'bottom-right';
  /** Sliding window (`has_window`, `window_left`, `window_right`). */
  window?: AttentionWindow;
  /** Tanh soft-capping of scores (`softcap`); 0 = off. */
  softcap?: number;
  /**
   * ALiBi slopes (`alibi_slopes`), f32, `[heads_q]` or `[batch, heads_q]`; on the device of q
   * (a {@link DeviceTensor} when q is one on CUDA).
   */
  alibiSlopes?: Tensor | Float32Array | DeviceTensor;
  /**
   * Boolean mask (dtype `bool`, nonzero = visible) or additive bias (f32/f16/bf16, may hold
   * −inf), broadcastable to `[batch, heads_q, seqlen_q, seqlen_k]` (`attn_mask`); on the device
   * of q.
   */
  attnMask?: Tensor | DeviceTensor;
  /**
   * Varlen: i32 `[batch + 1]` start rows of each sequence in packed q (`cu_seqlens_q`); on the
   * device of q (contiguous there).
   */
  cuSeqlensQ?: Tensor | Int32Array | DeviceTensor;
  /** Varlen: i32 `[batch + 1]` start rows of each sequence in packed k/v (`cu_seqlens_k`). */
  cuSeqlensK?: Tensor | Int32Array | DeviceTensor;
  /** Varlen: upper bound of the query sequence lengths (0 or omitted = computed). */
  maxSeqlenQ?: number;
  /** Varlen: upper bound of the key sequence lengths (0 or omitted = computed). */
  maxSeqlenK?: number;
  /** Bit-identical backward results run to run (`UMFA_FLAG_DETERMINISTIC`). */
  deterministic?: boolean;
  /** CUDA stream (`cudaStream_t` as an address); ignored on the CPU. */
  stream?: bigint;
}

/** Options of a forward call on host tensors: the ABI options plus where results go. */
export interface ForwardOptions extends AttentionOptions {
  /** The context to run on; the binding's default context when omitted. */
  context?: ContextLike;
  /** Also compute the log-sum-exp (needed by backward). Implied by `lse`. */
  returnLse?: boolean;
  /** Write the output here (no allocation). */
  out?: Tensor;
  /** Write the log-sum-exp here (f32). */
  lse?: Tensor;
  /** dtype of an allocated output; default: q's dtype. */
  outDtype?: DType;
}

/**
 * Options of a backward call on host tensors: the ABI options (the same as forward) plus where
 * gradients go.
 */
export interface BackwardOptions extends AttentionOptions {
  /** The context to run on; the binding's default context when omitted. */
  context?: ContextLike;
  /** Write ∂L/∂q here. */
  dq?: Tensor;
  /** Write ∂L/∂k here. */
  dk?: Tensor;
  /** Write ∂L/∂v here. */
  dv?: Tensor;
  /** dtype of allocated gradients; default: the dtype of q, k and v. */
  gradDtype?: DType;
}

/**
 * Options of a forward call on {@link DeviceTensor}s: the ABI options plus where results go.
 * Outputs that are not given are allocated on the context's device.
 */
export interface DeviceForwardOptions extends AttentionOptions {
  /** The context to run on; the context of q when omitted. */
  context?: ContextLike;
  /** Also compute the log-sum-exp (needed by backward). Implied by `lse`. */
  returnLse?: boolean;
  /** Write the output here (no allocation). */
  out?: DeviceTensor;
  /** Write the log-sum-exp here (f32). */
  lse?: DeviceTensor;
  /** dtype of an allocated output; default: q's dtype. */
  outDtype?: DType;
}

/**
 * Options of a backward call on {@link DeviceTensor}s: the ABI options (the same as forward)
 * plus where gradients go (allocated on the context's device when not given).
 */
export interface DeviceBackwardOptions extends AttentionOptions {
  /** The context to run on; the context of q when omitted. */
  context?: ContextLike;
  /** Write ∂L/∂q here. */
  dq?: DeviceTensor;
  /** Write ∂L/∂k here. */
  dk?: DeviceTensor;
  /** Write ∂L/∂v here. */
  dv?: DeviceTensor;
  /** dtype of allocated gradients; default: the dtype of q, k and v. */
  gradDtype?: DType;
}

/** Backends a context can run on. */
export type BackendName = 'auto' | 'cpu' | 'cuda' | 'metal';

/** Options of a new context (`umfa_context_options`). */
export interface ContextOptions {
  /**
   * Which backend; default `'cpu'`. `'auto'` is CUDA when a usable GPU and the CUDA backend are
   * present, else the CPU. Tensors built from typed arrays are host memory, which only the CPU
   * backend reads: a CUDA context takes {@link DeviceTensor}s (`ctx.upload(tensor)`) and
   * rejects host tensors with `DEVICE_MISMATCH`; nothing is copied behind your back. Device
   * tensors work on every backend, so code that uploads its tensors runs under `'auto'`
   * wherever it lands. (The C ABI's own default is AUTO.) `'metal'` runs on the Apple GPU and
   * reads host tensors in place (unified memory; page-aligned memory without a copy); `'auto'`
   * picks it on Apple platforms after CUDA. On Linux it is reachable only when the environment
   * variable `UMFA_METAL_LIB` names the simulated Metal backend (tests and development).
   */
  backend?: BackendName;
  /** CUDA device ordinal; default 0. */
  deviceIndex?: number;
  /** CPU worker threads; 0/omitted = one per core (or `UMFA_NUM_THREADS`); 1 = calling thread. */
  numThreads?: number;
  /** Upper bound on scratch memory per call in bytes; 0/omitted = no limit. */
  workspaceLimitBytes?: number | bigint;
}

/** Availability of one backend on this machine, from `umfa_backend_available`. */
export interface BackendInfo {
  /** The backend. */
  name: 'cpu' | 'cuda' | 'metal';
  /** Whether it can run here. */
  available: boolean;
  /** Number of devices (1 for the CPU). */
  deviceCount: number;
}

/**
 * What a context looks like to the option types: any binding's `Context` (implemented by
 * `ContextBase`).
 */
export interface ContextLike {
  /** True once disposed. */
  readonly disposed: boolean;
}

/** Element precision of the classic API (`mfa_precision_t`). */
export type Precision = 'fp16' | 'bf16' | 'fp32';

/** Options of the classic `flashAttentionForward`. */
export interface ClassicForwardOptions {
  /** Top-left causal mask. */
  causal?: boolean;
  /** Precision of q, k and v; default from q's dtype. */
  inputPrecision?: Precision;
  /** Accepted for compatibility; umfa always accumulates in fp32. */
  intermediatePrecision?: Precision;
  /** Precision of the output; default = input precision. */
  outputPrecision?: Precision;
  /** 0/omitted = 1/√head_dim. */
  softmaxScale?: number;
  /** Q stored transposed per head (`[batch, heads, head_dim, seq]`). */
  transposeQ?: boolean;
  /** K stored transposed per head. */
  transposeK?: boolean;
  /** V stored transposed per head. */
  transposeV?: boolean;
  /** Output stored transposed per head. */
  transposeO?: boolean;
  /** Write the output into this array instead of allocating one. */
  out?: ArrayBufferView;
}
