/**
 * The public surface of a binding, made once here for both `@umfa/koffi` and `@umfa/napi`: each
 * calls {@link createBinding} with its own {@link Driver} and re-exports the result, so the two
 * packages share one implementation and one set of documented signatures.
 *
 * @module
 */
import { MFAContextBase } from './classic.js';
import { ContextBase, Runtime } from './context.js';
import { isDeviceTensor, type DeviceTensor } from './device.js';
import type { Driver } from './driver.js';
import { findNativeLibrary, hasPlatformPackage } from './loader.js';
import type {
  BackendInfo,
  BackwardOptions,
  ClassicForwardOptions,
  ContextOptions,
  DeviceBackwardOptions,
  DeviceForwardOptions,
  ForwardOptions,
} from './options.js';
import type {
  BackwardResult,
  ClassicOutData,
  DeviceBackwardResult,
  DeviceForwardResult,
  ForwardResult,
  KnownOptions,
} from './results.js';
import type { Tensor } from './tensor.js';

/** The constructor of a binding's `Context`. */
export interface ContextConstructor {
  /**
   * Creates a context (`umfa_context_create`).
   *
   * @param options - backend (default `'cpu'`), device, threads, workspace limit
   * @throws UmfaError, e.g. `BACKEND_UNAVAILABLE` for `{ backend: 'cuda' }` without a GPU
   * @throws UmfaLoadError when the native library cannot be found or has another ABI version
   */
  new (options?: ContextOptions): ContextBase;
  /** The instance prototype. */
  readonly prototype: ContextBase;
}

/** The constructor of a binding's `MFAContext`. */
export interface MFAContextConstructor {
  /**
   * Creates a classic context (`mfa_create_context`, the AUTO backend).
   *
   * @throws MFAError when the core cannot create one
   */
  new (): MFAContextBase;
  /** The instance prototype. */
  readonly prototype: MFAContextBase;
}

/** The type of `attention`: forward attention on host or device tensors. */
export interface AttentionFunction {
  /**
   * Forward attention: `out = softmax(mask(q·kᵀ·scale))·v` per batch and query head
   * (`umfa_attention_forward`). q is `[batch, seqlen_q, heads_q, head_dim]`, k and v
   * `[batch, seqlen_k, heads_kv, head_dim]` (BSHD; see `bhsd` for PyTorch's layout); GQA/MQA when
   * heads_kv divides heads_q. Inputs are read in place; the output (and the LSE when `returnLse`)
   * are allocated unless given in the options. Runs on `options.context`, else the binding's
   * default context (CPU).
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
  <Q extends ArrayBufferView, O extends ForwardOptions = {}>(q: Tensor<Q>, k: Tensor, v: Tensor, options?: KnownOptions<O, ForwardOptions>): ForwardResult<Q, O>;
  /**
   * Forward attention on {@link DeviceTensor}s (`ctx.upload(tensor)`): the same call, run on
   * `options.context`, else on the context q was made on; the outputs are device tensors there.
   * On CUDA the call returns once the work is queued (see `DeviceTensor`).
   *
   * @example
   * ```ts
   * using ctx = new Context({ backend: 'auto' });
   * using q = ctx.upload(bshd(values, [1, 1024, 8, 64]));
   * const { out } = attention(q, q, q, { causal: true });
   * const host = out.download();
   * ```
   *
   * @param q - queries on a device
   * @param k - keys, on q's device
   * @param v - values, on q's device
   * @param options - the ABI options, and device tensors to write the results into
   * @returns the output and, when asked for, the log-sum-exp, as device tensors
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  <Q extends ArrayBufferView, O extends DeviceForwardOptions = {}>(
    q: DeviceTensor<Q>,
    k: DeviceTensor,
    v: DeviceTensor,
    options?: KnownOptions<O, DeviceForwardOptions>,
  ): DeviceForwardResult<Q, O>;
}

/** The type of `attentionAsync`: {@link AttentionFunction} on a worker thread. */
export interface AttentionAsyncFunction {
  /**
   * `attention` on a worker thread. Do not modify the inputs or outputs until the Promise
   * settles. Any number of calls may be in flight.
   *
   * @param q - queries (f32, f16 or bf16)
   * @param k - keys (same dtype as q)
   * @param v - values (same dtype as q)
   * @param options - as for `attention`
   * @returns a Promise of the output (and LSE); rejects with UmfaError on failure
   */
  <Q extends ArrayBufferView, O extends ForwardOptions = {}>(q: Tensor<Q>, k: Tensor, v: Tensor, options?: KnownOptions<O, ForwardOptions>): Promise<ForwardResult<Q, O>>;
  /**
   * `attention` on device tensors, on a worker thread (on CUDA the Promise settles when the work
   * is queued; `download()` waits for it). Device tensors disposed meanwhile are freed after it.
   *
   * @param q - queries on a device
   * @param k - keys, on q's device
   * @param v - values, on q's device
   * @param options - as for `attention` on device tensors
   * @returns a Promise of the output (and LSE) as device tensors; rejects with UmfaError on failure
   */
  <Q extends ArrayBufferView, O extends DeviceForwardOptions = {}>(
    q: DeviceTensor<Q>,
    k: DeviceTensor,
    v: DeviceTensor,
    options?: KnownOptions<O, DeviceForwardOptions>,
  ): Promise<DeviceForwardResult<Q, O>>;
}

/** The type of `attentionBackward`: backward attention on host or device tensors. */
export interface AttentionBackwardFunction {
  /**
   * Backward attention (`umfa_attention_backward`): given `dout = ∂L/∂out`, returns dq, dk, dv
   * shaped like q, k, v. `out` and `lse` are the forward call's results; pass the same options.
   *
   * @param q - the forward call's queries
   * @param k - its keys
   * @param v - its values
   * @param out - its output
   * @param dout - ∂L/∂out, shaped like out
   * @param lse - its log-sum-exp (`returnLse: true`)
   * @param options - the forward call's options, plus where the gradients go
   * @returns the gradients
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  <Q extends ArrayBufferView, K extends ArrayBufferView, V extends ArrayBufferView, O extends BackwardOptions = {}>(
    q: Tensor<Q>,
    k: Tensor<K>,
    v: Tensor<V>,
    out: Tensor,
    dout: Tensor,
    lse: Tensor,
    options?: KnownOptions<O, BackwardOptions>,
  ): BackwardResult<Q, K, V, O>;
  /**
   * Backward attention on device tensors, run on `options.context`, else on q's context; the
   * gradients are device tensors there.
   *
   * @param q - the forward call's queries
   * @param k - its keys
   * @param v - its values
   * @param out - its output
   * @param dout - ∂L/∂out, shaped like out
   * @param lse - its log-sum-exp
   * @param options - the forward call's options, plus device tensors for the gradients
   * @returns the gradients as device tensors
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  <Q extends ArrayBufferView, K extends ArrayBufferView, V extends ArrayBufferView, O extends DeviceBackwardOptions = {}>(
    q: DeviceTensor<Q>,
    k: DeviceTensor<K>,
    v: DeviceTensor<V>,
    out: DeviceTensor,
    dout: DeviceTensor,
    lse: DeviceTensor,
    options?: KnownOptions<O, DeviceBackwardOptions>,
  ): DeviceBackwardResult<Q, K, V, O>;
}

/** The type of `attentionBackwardAsync`: {@link AttentionBackwardFunction} on a worker thread. */
export interface AttentionBackwardAsyncFunction {
  /**
   * `attentionBackward` on a worker thread.
   *
   * @param q - the forward call's queries
   * @param k - its keys
   * @param v - its values
   * @param out - its output
   * @param dout - ∂L/∂out
   * @param lse - its log-sum-exp
   * @param options - the forward call's options, plus where the gradients go
   * @returns a Promise of the gradients; rejects with UmfaError on failure
   */
  <Q extends ArrayBufferView, K extends ArrayBufferView, V extends ArrayBufferView, O extends BackwardOptions = {}>(
    q: Tensor<Q>,
    k: Tensor<K>,
    v: Tensor<V>,
    out: Tensor,
    dout: Tensor,
    lse: Tensor,
    options?: KnownOptions<O, BackwardOptions>,
  ): Promise<BackwardResult<Q, K, V, O>>;
  /**
   * `attentionBackward` on device tensors, on a worker thread.
   *
   * @param q - the forward call's queries
   * @param k - its keys
   * @param v - its values
   * @param out - its output
   * @param dout - ∂L/∂out
   * @param lse - its log-sum-exp
   * @param options - the forward call's options, plus device tensors for the gradients
   * @returns a Promise of the gradients as device tensors; rejects with UmfaError on failure
   */
  <Q extends ArrayBufferView, K extends ArrayBufferView, V extends ArrayBufferView, O extends DeviceBackwardOptions = {}>(
    q: DeviceTensor<Q>,
    k: DeviceTensor<K>,
    v: DeviceTensor<V>,
    out: DeviceTensor,
    dout: DeviceTensor,
    lse: DeviceTensor,
    options?: KnownOptions<O, DeviceBackwardOptions>,
  ): Promise<DeviceBackwardResult<Q, K, V, O>>;
}

/** The type of `flashAttentionForward`: the classic API's forward call. */
export interface FlashAttentionForwardFunction {
  /**
   * Classic forward attention (`mfa_attention_forward`): dense `[batch, seq, heads, head_dim]`
   * q, k, v of one precision; returns the output tensor.
   *
   * @param ctx - a classic context (`new MFAContext()`)
   * @param q - queries
   * @param k - keys
   * @param v - values
   * @param options - causal, precisions, scale, transposes, output array
   * @returns the output
   * @throws MFAError with the classic code and the core's detailed message
   */
  <Q extends ArrayBufferView, O extends ClassicForwardOptions = {}>(
    ctx: MFAContextBase,
    q: Tensor<Q>,
    k: Tensor,
    v: Tensor,
    options?: KnownOptions<O, ClassicForwardOptions>,
  ): Tensor<ClassicOutData<Q, O>>;
}

/** What {@link createBinding} needs from a binding package. */
export interface BindingInit {
  /** The package's name, for messages (e.g. `'@umfa/koffi'`). */
  name: string;
  /** The package's `import.meta.url`: where the search for the native library starts. */
  from: string;
  /**
   * Loads the native library at `path` (found by {@link findNativeLibrary}) and returns the
   * package's driver; called once, on first use.
   */
  driver: (path: string, name: string) => Driver;
}

/**
 * The surface of one binding, as `createBinding` (`@umfa/api/internal`) makes it. `@umfa/koffi` and `@umfa/napi`
 * export each member under its own name (`Context`, `attention`, ...).
 */
export interface Binding {
  /** The binding's `Context` class. */
  readonly Context: ContextConstructor;
  /** The binding's classic `MFAContext` class. */
  readonly MFAContext: MFAContextConstructor;
  /** Forward attention (see {@link AttentionFunction}). */
  readonly attention: AttentionFunction;
  /** Forward attention on a worker thread. */
  readonly attentionAsync: AttentionAsyncFunction;
  /** Backward attention. */
  readonly attentionBackward: AttentionBackwardFunction;
  /** Backward attention on a worker thread. */
  readonly attentionBackwardAsync: AttentionBackwardAsyncFunction;
  /** Classic forward attention. */
  readonly flashAttentionForward: FlashAttentionForwardFunction;
  /** The native library's version, e.g. `"0.1.0"` (`umfa_version_string`). */
  readonly version: () => string;
  /** The ABI version of the loaded library (`umfa_abi_version`). */
  readonly abiVersion: () => number;
  /** Which backends can run here (`umfa_backend_available`). */
  readonly backends: () => BackendInfo[];
  /** What the library was built with and detected at run time (`umfa_build_info`). */
  readonly buildInfo: () => string;
  /** Where the native library was loaded from. */
  readonly libraryPath: () => string;
  /**
   * The binding's driver (raw entry points; for tests and benchmarks).
   *
   * @internal
   */
  readonly driver: () => Driver;
}

type AnyTensor = Tensor | DeviceTensor;
type AnyOptions = { context?: unknown } | undefined;

/**
 * Makes the surface of a binding over its driver: the `Context` and `MFAContext` classes, the
 * attention functions (which run on `options.context`, the context of their device tensors, or a
 * default CPU context made on first use), and the library queries. On a platform with a native
 * package the library is found and loaded on first use, so importing the binding does not fail
 * there (a missing optional dependency is reported at the first call). On a platform no package
 * exists for, the import itself fails, naming the platform and the ways out, unless a library is
 * found anyway (`UMFA_LIB_DIR` or a workspace build).
 *
 * @param init - the binding's name, location and driver
 * @throws UmfaLoadError at import on a platform without a native package and no library found
 */
export function createBinding(init: BindingInit): Binding {
  if (!hasPlatformPackage()) findNativeLibrary({ from: init.from });
  const runtime = new Runtime(() => init.driver(findNativeLibrary({ from: init.from }).path, init.name));

  class Context extends ContextBase {
    constructor(options?: ContextOptions) {
      super(runtime, options);
    }
  }

  class MFAContext extends MFAContextBase {
    constructor() {
      super(runtime);
    }
  }

  const contextFor = (options: AnyOptions, q: AnyTensor): ContextBase => {
    const c = options?.context;
    if (c instanceof ContextBase) return c;
    if (isDeviceTensor(q)) return q.context;
    return runtime.defaultContext(() => new Context());
  };

  // Each function has the parameters of its declared type (its `length` is part of the surface);
  // the context methods check the arguments.
  type Forward = (q: AnyTensor, k: AnyTensor, v: AnyTensor, options?: AnyOptions) => unknown;
  type Backward = (q: AnyTensor, k: AnyTensor, v: AnyTensor, out: AnyTensor, dout: AnyTensor, lse: AnyTensor, options?: AnyOptions) => unknown;

  const attention: Forward = function attention(q, k, v, options) {
    const ctx = contextFor(options, q);
    return (ctx.attention as Forward).call(ctx, q, k, v, options);
  };
  const attentionAsync: Forward = function attentionAsync(q, k, v, options) {
    try {
      const ctx = contextFor(options, q);
      return (ctx.attentionAsync as Forward).call(ctx, q, k, v, options);
    } catch (e) {
      return Promise.reject(e);
    }
  };
  const attentionBackward: Backward = function attentionBackward(q, k, v, out, dout, lse, options) {
    const ctx = contextFor(options, q);
    return (ctx.attentionBackward as Backward).call(ctx, q, k, v, out, dout, lse, options);
  };
  const attentionBackwardAsync: Backward = function attentionBackwardAsync(q, k, v, out, dout, lse, options) {
    try {
      const ctx = contextFor(options, q);
      return (ctx.attentionBackwardAsync as Backward).call(ctx, q, k, v, out, dout, lse, options);
    } catch (e) {
      return Promise.reject(e);
    }
  };
  const flashAttentionForward: FlashAttentionForwardFunction = function flashAttentionForward(ctx, q, k, v, options) {
    return ctx.forward(q, k, v, options);
  };

  return {
    Context,
    MFAContext,
    attention: attention as AttentionFunction,
    attentionAsync: attentionAsync as AttentionAsyncFunction,
    attentionBackward: attentionBackward as AttentionBackwardFunction,
    attentionBackwardAsync: attentionBackwardAsync as AttentionBackwardAsyncFunction,
    flashAttentionForward,
    version: function version() {
      return runtime.version();
    },
    abiVersion: function abiVersion() {
      return runtime.abiVersion();
    },
    backends: function backends() {
      return runtime.backends();
    },
    buildInfo: function buildInfo() {
      return runtime.buildInfo();
    },
    libraryPath: function libraryPath() {
      return runtime.driver().libraryPath;
    },
    driver: function driver() {
      return runtime.driver();
    },
  };
}
