/**
 * `@umfa/api`: the TypeScript contract of umfa shared by `@umfa/koffi` and `@umfa/napi`:
 * tensor types and helpers, device tensors, dtype conversions, attention options, errors and
 * status codes, and the types of the binding surface both bindings implement. Applications
 * import one of the bindings, which re-export everything here. (The marshalling into the C ABI's
 * structs, the driver contract and the binding factory the two packages share are in the
 * `@umfa/api/internal` subpath, which is not part of the API and may change in any release.)
 *
 * @packageDocumentation
 */
export { Status, MFAStatus, statusName, mfaStatusName, type StatusName } from './status.js';
export { UmfaError, UmfaLoadError, MFAError } from './errors.js';
export {
  type DType,
  type DTypeData,
  dtypeSize,
  isDType,
  Float16ArrayCtor,
  type Float16ArrayConstructorLike,
  isFloat16Array,
  f32ToF16,
  f16ToF32,
  f32ToBf16,
  bf16ToF32,
  fromFloat32,
  toFloat32Array,
} from './dtype.js';
export {
  type Tensor,
  type TensorInit,
  type AttentionResult,
  type AttentionResultWithLse,
  type AttentionGradients,
  numel,
  contiguousStrides,
  stridesOf,
  isContiguous,
  inferDType,
  tensor,
  bshd,
  bhsd,
  zeros,
  toFloat32,
  fromValues,
  hasFloat16Array,
} from './tensor.js';
export type {
  MaskMode,
  AttentionWindow,
  AttentionOptions,
  ForwardOptions,
  BackwardOptions,
  DeviceForwardOptions,
  DeviceBackwardOptions,
  BackendName,
  ContextOptions,
  BackendInfo,
  ContextLike,
  Precision,
  ClassicForwardOptions,
} from './options.js';
export { ABI_VERSION } from './abi.js';
export type {
  OptionField,
  AllocatedData,
  ForwardOutData,
  ForwardLseData,
  ForwardResult,
  GradientData,
  BackwardResult,
  PrecisionData,
  ClassicOutData,
  KnownOptions,
  DeviceAttentionResult,
  DeviceAttentionResultWithLse,
  DeviceAttentionGradients,
  DeviceForwardOutData,
  DeviceForwardLseData,
  DeviceForwardResult,
  DeviceGradientData,
  DeviceBackwardResult,
} from './results.js';
export { DeviceTensor, isDeviceTensor, type DeviceName } from './device.js';
export { ContextBase } from './context.js';
export { MFAContextBase } from './classic.js';
export type {
  Binding,
  ContextConstructor,
  MFAContextConstructor,
  AttentionFunction,
  AttentionAsyncFunction,
  AttentionBackwardFunction,
  AttentionBackwardAsyncFunction,
  FlashAttentionForwardFunction,
} from './binding.js';
