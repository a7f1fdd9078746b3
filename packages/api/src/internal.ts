/**
 * `@umfa/api/internal`: what `@umfa/koffi` and `@umfa/napi` share beyond the public API — the
 * marshalling into the C ABI's structs, the driver contract, the binding factory and the native
 * library loader. Not part of the API: names here may change or go in any release. Tests of the
 * packages import it; applications import `@umfa/koffi` or `@umfa/napi`.
 *
 * @packageDocumentation
 */
export * from './index.js';
export { DTypeCode, allocData, elementsOf } from './dtype.js';
export {
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
export { byteLengthOf } from './intrinsics.js';
export type { Driver, AsyncOutcome, ClassicCall } from './driver.js';
export { Runtime } from './context.js';
export { precisionOf } from './classic.js';
export { createBinding, type BindingInit } from './binding.js';
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
