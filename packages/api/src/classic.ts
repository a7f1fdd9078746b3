import type { Runtime } from './context.js';
import { allocData, dtypeSize, type DType } from './dtype.js';
import type { Driver } from './driver.js';
import { MFAError, UmfaError } from './errors.js';
import type { ClassicForwardOptions, Precision } from './options.js';
import { MFAStatus, Status } from './status.js';
import type { ClassicOutData, KnownOptions } from './results.js';
import { isContiguous, numel, type Tensor } from './tensor.js';
import { viewInfo } from './intrinsics.js';
import { float32Option, optionsObject, snapshotTensor, type TensorSnapshot } from './snapshot.js';

const precisionCode: { readonly [K in Precision]: number } = { fp16: 0, bf16: 1, fp32: 2 };
const precisionDType: { readonly [K in Precision]: DType } = { fp16: 'f16', bf16: 'bf16', fp32: 'f32' };

/** The classic precision of a dtype (`f16` → `'fp16'`, ...). */
export function precisionOf(dtype: DType): Precision {
  switch (dtype) {
    case 'f16':
      return 'fp16';
    case 'bf16':
      return 'bf16';
    case 'f32':
      return 'fp32';
    default:
      throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `dtype ${dtype} has no classic precision`);
  }
}

interface ClassicState {
  driver: Driver;
  handle: bigint;
  destroyed: boolean;
}

const classicRegistry = new FinalizationRegistry<ClassicState>((s) => {
  if (!s.destroyed) {
    s.destroyed = true;
    s.driver.mfaDestroyContext(s.handle);
  }
});

/**
 * A classic (Universal Metal Flash Attention compatible) context, `mfa_context_t`: a umfa context
 * on the AUTO backend. Dispose it or let the finalizer free it. Each binding exports an
 * `MFAContext` subclass with a no-argument constructor.
 */
export class MFAContextBase implements Disposable {
  readonly #state: ClassicState;
  #disposed = false;

  /**
   * Creates the context (`mfa_create_context`).
   *
   * @throws MFAError when the core cannot create one
   * @internal Applications construct the binding's `MFAContext`, whose constructor takes no arguments.
   */
  constructor(runtime: Runtime) {
    const driver = runtime.driver();
    const [code, handle] = driver.mfaCreateContext();
    if (code !== MFAStatus.SUCCESS) throw new MFAError(code, driver.mfaErrorString(code));
    this.#state = { driver, handle, destroyed: false };
    classicRegistry.register(this, this.#state, this);
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees the context (`mfa_destroy_context`). Safe to call more than once. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    classicRegistry.unregister(this);
    if (!this.#state.destroyed) {
      this.#state.destroyed = true;
      this.#state.driver.mfaDestroyContext(this.#state.handle);
    }
  }

  /** Same as {@link MFAContextBase.dispose}. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Classic forward attention (`mfa_attention_forward`) on dense `[batch, seq, heads, head_dim]`
   * tensors (k and v share their shape; q differs only in seq). Returns the output tensor.
   *
   * @throws MFAError with the classic code and the core's detailed message
   */
  forward<Q extends ArrayBufferView, O extends ClassicForwardOptions = {}>(
    q: Tensor<Q>,
    k: Tensor,
    v: Tensor,
    options?: KnownOptions<O, ClassicForwardOptions>,
  ): Tensor<ClassicOutData<Q, O>> {
    return this.#forward(q, k, v, options ?? {}) as Tensor<ClassicOutData<Q, O>>;
  }

  #forward(q: Tensor, k: Tensor, v: Tensor, options: ClassicForwardOptions): Tensor {
    if (this.#disposed) throw new UmfaError(Status.INVALID_HANDLE, 'this MFAContext has been disposed');
    // Every value of the caller's is read once, here, before any length or address is taken.
    const qs = classicTensor(q, 'q');
    const ks = classicTensor(k, 'k');
    const vs = classicTensor(v, 'v');
    const o = optionsObject(options);
    const inputPrecision = o['inputPrecision'];
    const outputPrecision = o['outputPrecision'];
    const intermediatePrecision = o['intermediatePrecision'];
    const outOption = o['out'];
    const softmaxScale = o['softmaxScale'];
    const causal = !!o['causal'];
    const transpose = [!!o['transposeQ'], !!o['transposeK'], !!o['transposeV'], !!o['transposeO']] as const;
    const [batch, seqLenQ, heads, headDim] = qs.shape as [number, number, number, number];
    const seqLenKV = ks.shape[1] as number;
    for (const [value, name, max] of [
      [batch, 'batch_size', UINT32_MAX],
      [seqLenQ, 'seq_len_q', UINT32_MAX],
      [seqLenKV, 'seq_len_kv', UINT32_MAX],
      [heads, 'num_heads', UINT32_MAX],
      [headDim, 'head_dim', UINT16_MAX],
    ] as const) {
      if (value < 0 || value > max) {
        throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `${name} (${value}) is outside the classic API's range [0, ${max}]`);
      }
    }
    const input = (inputPrecision ?? precisionOf(qs.dtype)) as Precision;
    const output = (outputPrecision ?? input) as Precision;
    const intermediate = (intermediatePrecision ?? 'fp32') as Precision;
    const known = (p: Precision) => Object.prototype.hasOwnProperty.call(precisionCode, p);
    if (!known(input) || !known(output) || !known(intermediate)) {
      throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, 'unknown precision');
    }
    let scale: number;
    try {
      scale = softmaxScale === undefined ? 0 : float32Option(softmaxScale, 'softmaxScale');
    } catch (e) {
      throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, (e as Error).message);
    }
    const outShape = [batch, seqLenQ, heads, headDim];
    const outDType = precisionDType[output];
    if (outOption !== undefined && viewInfo(outOption) === undefined) {
      throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, 'out must be a typed array');
    }
    // q, k and v must hold what the shapes need before an output of that size is allocated: the
    // core checks them too, but only after a caller's small q with a huge shape would have cost a
    // huge allocation (or the engine's RangeError).
    const inBytes = dtypeSize(precisionDType[input]);
    for (const [s, seqLen] of [[qs, seqLenQ], [ks, seqLenKV], [vs, seqLenKV]] as const) {
      const need = batch * seqLen * heads * headDim * inBytes;
      const have = viewInfo(s.host)?.byteLength ?? 0;
      if (have < need) throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `${s.role} holds ${have} bytes but the shapes need ${need}`);
    }
    const outData = (outOption as ArrayBufferView | undefined) ?? allocData(outDType, numel(outShape));
    if (this.#state.destroyed || this.#disposed) throw new UmfaError(Status.INVALID_HANDLE, 'this MFAContext has been disposed');
    // Lengths through the engine's getters (a `byteLength` own property cannot lie here).
    const outBytes = viewInfo(outData)?.byteLength ?? 0;
    if (outBytes < numel(outShape) * dtypeSize(outDType)) {
      throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `out holds ${outBytes} bytes, too few for the output`);
    }
    const { driver, handle } = this.#state;
    const code = driver.mfaForward(handle, qs.host as ArrayBufferView, ks.host as ArrayBufferView, vs.host as ArrayBufferView, outData, {
      batch,
      seqLenQ,
      seqLenKV,
      heads,
      headDim,
      softmaxScale: scale,
      causal,
      inputPrecision: precisionCode[input],
      intermediatePrecision: precisionCode[intermediate],
      outputPrecision: precisionCode[output],
      transpose,
    });
    if (code !== MFAStatus.SUCCESS) {
      throw new MFAError(code, driver.lastError(handle) || driver.mfaErrorString(code));
    }
    return { data: outData, dtype: outDType, shape: outShape };
  }
}

const UINT32_MAX = 4294967295;
const UINT16_MAX = 65535;

/** Reads a classic tensor argument once: host memory, dense, rank 4 ([batch, seq, heads, head_dim]). */
function classicTensor(t: unknown, role: string): TensorSnapshot {
  if (t === null || typeof t !== 'object') {
    throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `${role} must be a tensor ({ data, dtype, shape })`);
  }
  let s: TensorSnapshot;
  try {
    s = snapshotTensor(t, role);
  } catch (e) {
    throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, (e as Error).message);
  }
  if (s.host === undefined) {
    throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `${role} must be a tensor ({ data, dtype, shape })`);
  }
  const plain: Tensor = s.strides === undefined ? { data: s.host, dtype: s.dtype, shape: s.shape } : { data: s.host, dtype: s.dtype, shape: s.shape, strides: s.strides };
  if (s.shape.length !== 4 || !isContiguous(plain)) {
    throw new MFAError(
      MFAStatus.ERROR_INVALID_ARGS,
      `${role}: the classic API takes dense rank-4 [batch, seq, heads, head_dim] tensors`,
    );
  }
  return s;
}
