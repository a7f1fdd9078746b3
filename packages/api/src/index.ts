/**
 * `@umfa/api`: the TypeScript contract of umfa shared by `@umfa/koffi` and `@umfa/napi`:
 * tensor types and helpers, device tensors, dtype conversions, attention options, errors and
 * status codes, the marshalling into the C ABI's structs, and the binding surface itself
 * ({@link createBinding}) that both bindings instantiate over their drivers. Applications import
 * one of the bindings, which re-export everything here.
 *
 * @packageDocumentation
 */
export { Status, MFAStatus, statusName, mfaStatusName, type StatusName } from './status.js';
export { UmfaError, UmfaLoadError, MFAError } from './errors.js';
export {
  type DType,
  type DTypeData,
  DTypeCode,
  dtypeSize,
  isDType,
  allocData,
  Float16ArrayCtor,
  type Float16ArrayConstructorLike,
  isFloat16Array,
  f32ToF16,
  f16ToF32,
  f32ToBf16,
  bf16ToF32,
  fromFloat32,
  toFloat32Array,
  elementsOf,
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
export {
  ABI_VERSION,
  Layout,
  Slot,
  SLOT_COUNT,
  FRAME_SIZE,
  MESSAGE_OFFSET,
  MESSAGE_CAPACITY,
  RELOCATED_OPTION_FIELDS,
  Frame,
  slotOffset,
  setInt64,
  encodeTensor,
  encodeOptions,
  encodeContextOptions,
  resolveMaskMode,
} from './abi.js';
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
/** @internal The engine's own length of a typed array or DataView (for the drivers). */
export { byteLengthOf } from './intrinsics.js';
export type { Driver, AsyncOutcome, ClassicCall } from './driver.js';
export { Runtime, ContextBase } from './context.js';
export { MFAContextBase, precisionOf } from './classic.js';
export {
  createBinding,
  type Binding,
  type BindingInit,
  type ContextConstructor,
  type MFAContextConstructor,
  type AttentionFunction,
  type AttentionAsyncFunction,
  type AttentionBackwardFunction,
  type AttentionBackwardAsyncFunction,
  type FlashAttentionForwardFunction,
} from './binding.js';
export {
  findNativeLibrary,
  checkAbiVersion,
  checkEntryPoints,
  platformDir,
  platformPackageName,
  libraryFileNames,
  currentPlatform,
  hasPlatformPackage,
  noLibraryMessage,
  NATIVE_PACKAGES,
  type TargetPlatform,
  type LibrarySource,
  type FoundLibrary,
  type FindLibraryOptions,
} from './loader.js';
