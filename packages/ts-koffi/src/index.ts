/**
 * `@umfa/koffi`: umfa flash attention for Node.js, calling the native library through koffi
 * (pure TypeScript, nothing to compile). Same API as `@umfa/napi`.
 *
 * @example
 * ```ts
 * import { attention, bshd } from '@umfa/koffi';
 * const q = bshd(new Float32Array(1 * 16 * 4 * 64), [1, 16, 4, 64]);
 * const { out, lse } = attention(q, q, q, { causal: true, returnLse: true });
 * ```
 *
 * @packageDocumentation
 */
import {
  ContextBase,
  findNativeLibrary,
  MFAContextBase,
  Runtime,
  type BackendInfo,
  type BackwardOptions,
  type BackwardResult,
  type ClassicForwardOptions,
  type ClassicOutData,
  type ContextOptions,
  type ForwardOptions,
  type ForwardResult,
  type KnownOptions,
  type Tensor,
} from '@umfa/api';
import { KoffiDriver } from './driver.js';

export * from '@umfa/api';

/** This package's name, as used in messages. */
export const BINDING = '@umfa/koffi';

const runtime = new Runtime(() => {
  const found = findNativeLibrary({ from: import.meta.url });
  return new KoffiDriver(found.path, BINDING);
});

/**
 * An execution context: one backend, one device, a thread pool and scratch memory. Dispose it
 * (`ctx.dispose()` or `using ctx = new Context()`); otherwise a finalizer frees it.
 *
 * @example
 * ```ts
 * using ctx = new Context({ backend: 'cpu', numThreads: 2 });
 * const { out } = ctx.attention(q, k, v, { causal: true });
 * ```
 */
export class Context extends ContextBase {
  /**
   * Creates a context (`umfa_context_create`).
   *
   * @throws UmfaError, e.g. `BACKEND_UNAVAILABLE` for `{ backend: 'cuda' }` without a GPU
   * @throws UmfaLoadError when the native library cannot be found or has another ABI version
   */
  constructor(options?: ContextOptions) {
    super(runtime, options);
  }
}

/** A classic (`mfa_*`) context for {@link flashAttentionForward}. */
export class MFAContext extends MFAContextBase {
  /** Creates the context (`mfa_create_context`). */
  constructor() {
    super(runtime);
  }
}

function contextFor(options: { context?: unknown } | undefined): ContextBase {
  const c = options?.context;
  if (c instanceof ContextBase) return c;
  return runtime.defaultContext(() => new Context());
}

/**
 * Forward attention: `out = softmax(mask(q·kᵀ·scale))·v` per batch and query head
 * (`umfa_attention_forward`). q is `[batch, seqlen_q, heads_q, head_dim]`, k and v
 * `[batch, seqlen_k, heads_kv, head_dim]` (BSHD; see `bhsd` for PyTorch's layout); GQA/MQA when
 * heads_kv divides heads_q. Inputs are read in place; the output (and the LSE when
 * `returnLse`) are allocated unless given in the options.
 *
 * The result is typed from the arguments (see `ForwardResult`): `out.data` is a `Float32Array`
 * for a `Float32Array` q (or `outDtype: 'f32'`), a `Uint16Array` for f16/bf16 bits, and `lse` is
 * not optional when `returnLse: true` is passed.
 *
 * @example
 * ```ts
 * const { out, lse } = attention(q, k, v, { causal: true, returnLse: true });
 * out.data; // Float32Array when q's data is one
 * attentionBackward(q, k, v, out, dout, lse); // lse: Tensor<Float32Array>, no cast
 * ```
 *
 * @param q - queries (f32, f16 or bf16)
 * @param k - keys (same dtype as q)
 * @param v - values (same dtype as q)
 * @param options - every ABI option (scale, masks, window, softcap, ALiBi, varlen) plus outputs
 * @returns the output and, when asked for, the log-sum-exp
 * @throws UmfaError with the core's status and message; nothing is written then
 */
export function attention<Q extends ArrayBufferView, O extends ForwardOptions = {}>(
  q: Tensor<Q>,
  k: Tensor,
  v: Tensor,
  options?: KnownOptions<O, ForwardOptions>,
): ForwardResult<Q, O> {
  return contextFor(options).attention(q, k, v, options);
}

/**
 * {@link attention} on a worker thread. Do not modify the inputs or outputs until the Promise
 * settles. Any number of calls may be in flight.
 *
 * @returns a Promise of the output (and LSE); rejects with UmfaError on failure
 */
export function attentionAsync<Q extends ArrayBufferView, O extends ForwardOptions = {}>(
  q: Tensor<Q>,
  k: Tensor,
  v: Tensor,
  options?: KnownOptions<O, ForwardOptions>,
): Promise<ForwardResult<Q, O>> {
  try {
    return contextFor(options).attentionAsync(q, k, v, options);
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Backward attention (`umfa_attention_backward`): given `dout = ∂L/∂out`, returns dq, dk, dv
 * shaped like q, k, v. `out` and `lse` are the forward call's results; pass the same options.
 *
 * @throws UmfaError with the core's status and message; nothing is written then
 */
export function attentionBackward<
  Q extends ArrayBufferView,
  K extends ArrayBufferView,
  V extends ArrayBufferView,
  O extends BackwardOptions = {},
>(
  q: Tensor<Q>,
  k: Tensor<K>,
  v: Tensor<V>,
  out: Tensor,
  dout: Tensor,
  lse: Tensor,
  options?: KnownOptions<O, BackwardOptions>,
): BackwardResult<Q, K, V, O> {
  return contextFor(options).attentionBackward(q, k, v, out, dout, lse, options);
}

/**
 * {@link attentionBackward} on a worker thread.
 *
 * @returns a Promise of the gradients; rejects with UmfaError on failure
 */
export function attentionBackwardAsync<
  Q extends ArrayBufferView,
  K extends ArrayBufferView,
  V extends ArrayBufferView,
  O extends BackwardOptions = {},
>(
  q: Tensor<Q>,
  k: Tensor<K>,
  v: Tensor<V>,
  out: Tensor,
  dout: Tensor,
  lse: Tensor,
  options?: KnownOptions<O, BackwardOptions>,
): Promise<BackwardResult<Q, K, V, O>> {
  try {
    return contextFor(options).attentionBackwardAsync(q, k, v, out, dout, lse, options);
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Classic forward attention (`mfa_attention_forward`): dense `[batch, seq, heads, head_dim]`
 * q, k, v of one precision; returns the output tensor.
 *
 * @throws MFAError with the classic code and the core's detailed message
 */
export function flashAttentionForward<Q extends ArrayBufferView, O extends ClassicForwardOptions = {}>(
  ctx: MFAContext,
  q: Tensor<Q>,
  k: Tensor,
  v: Tensor,
  options?: KnownOptions<O, ClassicForwardOptions>,
): Tensor<ClassicOutData<Q, O>> {
  return ctx.forward(q, k, v, options);
}

/** The native library's version, e.g. `"0.1.0"` (`umfa_version_string`). */
export function version(): string {
  return runtime.version();
}

/**
 * The ABI version of the loaded library (`umfa_abi_version`). Loading refuses a library whose
 * ABI version differs from `ABI_VERSION`.
 */
export function abiVersion(): number {
  return runtime.abiVersion();
}

/** Which backends can run here (`umfa_backend_available`). */
export function backends(): BackendInfo[] {
  return runtime.backends();
}

/** What the library was built with and detected at run time (`umfa_build_info`). */
export function buildInfo(): string {
  return runtime.buildInfo();
}

/** Where the native library was loaded from. */
export function libraryPath(): string {
  return runtime.driver().libraryPath;
}

/**
 * Internals for tests and benchmarks: the driver (raw entry points) of this binding.
 *
 * @internal
 */
export function _driver(): import('@umfa/api').Driver {
  return runtime.driver();
}
