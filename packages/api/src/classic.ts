import type { Runtime } from './context.js';
import { allocData, dtypeSize, type DType } from './dtype.js';
import type { Driver } from './driver.js';
import { MFAError, UmfaError } from './errors.js';
import type { ClassicForwardOptions, Precision } from './options.js';
import { MFAStatus, Status } from './status.js';
import type { ClassicOutData, KnownOptions } from './results.js';
import { isContiguous, numel, type Tensor } from './tensor.js';

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
    const { driver, handle } = this.#state;
    for (const [t, role] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
      if (t === null || typeof t !== 'object' || !ArrayBuffer.isView(t.data)) {
        throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `${role} must be a tensor ({ data, dtype, shape })`);
      }
      if (t.shape.length !== 4 || !isContiguous(t)) {
        throw new MFAError(
          MFAStatus.ERROR_INVALID_ARGS,
          `${role}: the classic API takes dense rank-4 [batch, seq, heads, head_dim] tensors`,
        );
      }
    }
    const [batch, seqLenQ, heads, headDim] = q.shape as [number, number, number, number];
    const seqLenKV = k.shape[1] as number;
    const input = options.inputPrecision ?? precisionOf(q.dtype);
    const output = options.outputPrecision ?? input;
    const intermediate = options.intermediatePrecision ?? 'fp32';
    const outShape = [batch, seqLenQ, heads, headDim];
    const outDType = precisionDType[output];
    if (outDType === undefined || precisionCode[input] === undefined || precisionCode[intermediate] === undefined) {
      throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, 'unknown precision');
    }
    const outData = options.out ?? allocData(outDType, numel(outShape));
    if (outData.byteLength < numel(outShape) * dtypeSize(outDType)) {
      throw new MFAError(MFAStatus.ERROR_INVALID_ARGS, `out holds ${outData.byteLength} bytes, too few for the output`);
    }
    const code = driver.mfaForward(handle, q.data, k.data, v.data, outData, {
      batch,
      seqLenQ,
      seqLenKV,
      heads,
      headDim,
      softmaxScale: options.softmaxScale ?? 0,
      causal: options.causal ?? false,
      inputPrecision: precisionCode[input],
      intermediatePrecision: precisionCode[intermediate],
      outputPrecision: precisionCode[output],
      transpose: [!!options.transposeQ, !!options.transposeK, !!options.transposeV, !!options.transposeO],
    });
    if (code !== MFAStatus.SUCCESS) {
      throw new MFAError(code, driver.lastError(handle) || driver.mfaErrorString(code));
    }
    return { data: outData, dtype: outDType, shape: outShape };
  }
}
