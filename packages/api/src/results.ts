/**
 * Result types computed from the arguments of a call, so that `attention(q, k, v)` on a
 * `Float32Array` tensor returns `out.data` typed `Float32Array`, `{ returnLse: true }` returns a
 * non-optional `lse`, and `{ outDtype: 'bf16' }` gives a `Uint16Array` — no casts needed. When
 * the options' type does not say (an options object typed as plain `ForwardOptions`), the result
 * type is the union of what the call may return.
 *
 * @module
 */
import type { DType, DTypeData } from './dtype.js';
import type { AttentionGradients, AttentionResult, AttentionResultWithLse, Tensor } from './tensor.js';
import type { Precision } from './options.js';
import type { DeviceTensor } from './device.js';

/**
 * The type of option `K` in an options type `O`: `undefined` when `O` does not have it (an object
 * literal that leaves it out), the option's declared type when `O` is a declared options type.
 */
export type OptionField<O, K extends PropertyKey> = K extends keyof O ? O[K] : undefined;

/**
 * The data of an output umfa allocates in dtype `T`, next to an input whose data is `Like`: with
 * no dtype asked for (`T` undefined) the output has the input's dtype and kind of typed array;
 * otherwise the typed array of `T` (f16 next to a `Float16Array` input is a `Float16Array`,
 * typed here as `ArrayBufferView` since the TypeScript library may not declare one).
 */
export type AllocatedData<T, Like extends ArrayBufferView> = T extends undefined
  ? Like extends Float32Array
    ? Float32Array
    : Like extends Uint16Array
      ? Uint16Array
      : ArrayBufferView
  : T extends 'f16'
    ? Like extends Float32Array | Uint16Array
      ? Uint16Array
      : ArrayBufferView
    : T extends DType
      ? DTypeData[T]
      : never;

/**
 * The data of the output of a forward call on q data `Q` with options `O`: the `out` tensor's when
 * one is passed, else allocated in `outDtype` (default: q's dtype).
 */
export type ForwardOutData<Q extends ArrayBufferView, O> =
  OptionField<O, 'out'> extends infer X ? (X extends Tensor<infer D> ? D : AllocatedData<OptionField<O, 'outDtype'>, Q>) : never;

/** The data of the log-sum-exp of a forward call with options `O`: the `lse` tensor's, else f32. */
export type ForwardLseData<O> = OptionField<O, 'lse'> extends infer X ? (X extends Tensor<infer L> ? L : Float32Array) : never;

/**
 * What a forward call returns: {@link AttentionResultWithLse} (a non-optional `lse`) when the
 * options ask for it (`returnLse: true` or an `lse` tensor), else {@link AttentionResult}.
 */
export type ForwardResult<Q extends ArrayBufferView, O> =
  OptionField<O, 'lse'> extends Tensor
    ? AttentionResultWithLse<ForwardOutData<Q, O>, ForwardLseData<O>>
    : OptionField<O, 'returnLse'> extends true
      ? AttentionResultWithLse<ForwardOutData<Q, O>, ForwardLseData<O>>
      : AttentionResult<ForwardOutData<Q, O>, ForwardLseData<O>>;

/**
 * The data of gradient `G` (`'dq'`, `'dk'` or `'dv'`) of a backward call whose matching input has
 * data `Like`: the passed tensor's, else allocated in `gradDtype` (default: the input's dtype).
 */
export type GradientData<Like extends ArrayBufferView, O, G extends 'dq' | 'dk' | 'dv'> =
  OptionField<O, G> extends infer X ? (X extends Tensor<infer D> ? D : AllocatedData<OptionField<O, 'gradDtype'>, Like>) : never;

/** What a backward call on q, k, v data `Q`, `K`, `V` with options `O` returns. */
export type BackwardResult<Q extends ArrayBufferView, K extends ArrayBufferView, V extends ArrayBufferView, O> = AttentionGradients<
  GradientData<Q, O, 'dq'>,
  GradientData<K, O, 'dk'>,
  GradientData<V, O, 'dv'>
>;

/** The typed array of each classic {@link Precision}. */
export interface PrecisionData {
  /** binary16 bit patterns. */
  fp16: Uint16Array;
  /** bfloat16 bit patterns. */
  bf16: Uint16Array;
  /** 32-bit floats. */
  fp32: Float32Array;
}

/**
 * The data of the output of the classic `flashAttentionForward` on q data `Q` with options `O`:
 * the `out` array when passed, else allocated in `outputPrecision` (default: `inputPrecision`,
 * default: q's dtype).
 */
export type ClassicOutData<Q extends ArrayBufferView, O> =
  OptionField<O, 'out'> extends infer X
    ? X extends ArrayBufferView
      ? X
      : OptionField<O, 'outputPrecision'> extends infer P
        ? P extends Precision
          ? PrecisionData[P]
          : OptionField<O, 'inputPrecision'> extends infer I
            ? I extends Precision
              ? PrecisionData[I]
              : Q extends Float32Array
                ? Float32Array
                : Q extends Uint16Array
                  ? Uint16Array
                  : ArrayBufferView
            : never
        : never
    : never;

/**
 * `O` with every key that `Allowed` does not have typed `never`: used for options parameters so
 * that a misspelled option (`{ casual: true }`) is a compile error even though the options'
 * type is inferred from the call.
 */
export type KnownOptions<O, Allowed> = O & { [K in Exclude<keyof O, keyof Allowed>]: never };

/** The result of a forward call on device tensors: output and (when asked for) LSE, on the device. */
export interface DeviceAttentionResult<D extends ArrayBufferView = ArrayBufferView, L extends ArrayBufferView = ArrayBufferView> {
  /** `[batch, seqlen_q, heads_q, head_dim_v]` (or `[total_q, heads_q, head_dim_v]` for varlen). */
  out: DeviceTensor<D>;
  /** `f32` `[batch, heads_q, seqlen_q]` (or `[heads_q, total_q]`), natural-log LSE per row. */
  lse?: DeviceTensor<L>;
}

/** A {@link DeviceAttentionResult} that asked for the log-sum-exp. */
export interface DeviceAttentionResultWithLse<D extends ArrayBufferView = ArrayBufferView, L extends ArrayBufferView = Float32Array>
  extends DeviceAttentionResult<D, L> {
  /** `f32` `[batch, heads_q, seqlen_q]` (or `[heads_q, total_q]`), natural-log LSE per row. */
  lse: DeviceTensor<L>;
}

/** The gradients of a backward call on device tensors, on the device. */
export interface DeviceAttentionGradients<
  Q extends ArrayBufferView = ArrayBufferView,
  K extends ArrayBufferView = ArrayBufferView,
  V extends ArrayBufferView = ArrayBufferView,
> {
  /** ∂L/∂q, shaped like q. */
  dq: DeviceTensor<Q>;
  /** ∂L/∂k, shaped like k (summed over the query heads sharing each key head). */
  dk: DeviceTensor<K>;
  /** ∂L/∂v, shaped like v. */
  dv: DeviceTensor<V>;
}

/**
 * The data (as {@link DeviceTensor.download} returns it) of the output of a forward call on a
 * device q whose data is `Q`: the `out` tensor's when one is passed, else `outDtype`'s (default:
 * q's).
 */
export type DeviceForwardOutData<Q extends ArrayBufferView, O> =
  OptionField<O, 'out'> extends infer X ? (X extends DeviceTensor<infer D> ? D : AllocatedData<OptionField<O, 'outDtype'>, Q>) : never;

/** The data of the log-sum-exp of a forward call on device tensors: the `lse` tensor's, else f32. */
export type DeviceForwardLseData<O> = OptionField<O, 'lse'> extends infer X ? (X extends DeviceTensor<infer L> ? L : Float32Array) : never;

/**
 * What a forward call on device tensors returns: device tensors typed like {@link ForwardResult}
 * types host ones (a non-optional `lse` when `returnLse: true` or an `lse` tensor is passed).
 */
export type DeviceForwardResult<Q extends ArrayBufferView, O> =
  OptionField<O, 'lse'> extends DeviceTensor
    ? DeviceAttentionResultWithLse<DeviceForwardOutData<Q, O>, DeviceForwardLseData<O>>
    : OptionField<O, 'returnLse'> extends true
      ? DeviceAttentionResultWithLse<DeviceForwardOutData<Q, O>, DeviceForwardLseData<O>>
      : DeviceAttentionResult<DeviceForwardOutData<Q, O>, DeviceForwardLseData<O>>;

/** The data of device gradient `G` of a backward call whose matching input has data `Like`. */
export type DeviceGradientData<Like extends ArrayBufferView, O, G extends 'dq' | 'dk' | 'dv'> =
  OptionField<O, G> extends infer X ? (X extends DeviceTensor<infer D> ? D : AllocatedData<OptionField<O, 'gradDtype'>, Like>) : never;

/** What a backward call on device tensors with data `Q`, `K`, `V` and options `O` returns. */
export type DeviceBackwardResult<Q extends ArrayBufferView, K extends ArrayBufferView, V extends ArrayBufferView, O> = DeviceAttentionGradients<
  DeviceGradientData<Q, O, 'dq'>,
  DeviceGradientData<K, O, 'dk'>,
  DeviceGradientData<V, O, 'dv'>
>;
