import type { Frame } from './abi.js';

/** How an asynchronous native call ended. */
export interface AsyncOutcome {
  /** The status the core returned. */
  status: number;
  /** The core's message when `status` is not OK and the driver read it on the worker thread. */
  message?: string;
}

/** Scalar arguments of the classic `mfa_attention_forward`, in ABI order. */
export interface ClassicCall {
  /** batch_size. */
  batch: number;
  /** seq_len_q. */
  seqLenQ: number;
  /** seq_len_kv. */
  seqLenKV: number;
  /** num_heads. */
  heads: number;
  /** head_dim. */
  headDim: number;
  /** softmax_scale (0 = default). */
  softmaxScale: number;
  /** causal (top-left). */
  causal: boolean;
  /** `MFA_PRECISION_*` of q, k, v. */
  inputPrecision: number;
  /** `MFA_PRECISION_*` accepted for compatibility. */
  intermediatePrecision: number;
  /** `MFA_PRECISION_*` of out. */
  outputPrecision: number;
  /** transpose_q, transpose_k, transpose_v, transpose_o. */
  transpose: readonly [boolean, boolean, boolean, boolean];
}

/**
 * The low-level contract a binding implements over the native library: one method per C entry
 * point it needs, with handles as `bigint` addresses. `@umfa/koffi` implements it with koffi,
 * `@umfa/napi` with its addon; everything above it (contexts, options, outputs, errors) is shared
 * code in this package, so both bindings behave identically. Not meant for application code.
 */
export interface Driver {
  /** `'koffi'` or `'napi'`. */
  readonly kind: string;
  /** The file the library was loaded from. */
  readonly libraryPath: string;
  /** `umfa_abi_version()`. */
  abiVersion(): number;
  /** `umfa_version()` (MAJOR·10000 + MINOR·100 + PATCH). */
  version(): number;
  /** `umfa_version_string()`. */
  versionString(): string;
  /** `umfa_build_info()`. */
  buildInfo(): string;
  /** `umfa_status_string(status)`. */
  statusString(status: number): string;
  /** `umfa_backend_available(backend)` → [status, available, deviceCount]. */
  backendAvailable(backend: number): [status: number, available: boolean, deviceCount: number];
  /** `umfa_context_create` with encoded options → [status, handle]. */
  contextCreate(options: Uint8Array): [status: number, handle: bigint];
  /** `umfa_context_destroy`. */
  contextDestroy(handle: bigint): void;
  /** `umfa_context_backend` → [status, backend]. */
  contextBackend(handle: bigint): [status: number, backend: number];
  /** `umfa_context_num_threads` → [status, threads]. */
  contextNumThreads(handle: bigint): [status: number, threads: number];
  /** `umfa_last_error(handle)` (0n = the calling thread's). */
  lastError(handle: bigint): string;
  /** `umfa_buffer_create(context, bytes)` → [status, buffer]. */
  bufferCreate(context: bigint, bytes: number): [status: number, buffer: bigint];
  /** `umfa_buffer_destroy`. */
  bufferDestroy(buffer: bigint): void;
  /** `umfa_buffer_data` → [status, pointer]. */
  bufferData(buffer: bigint): [status: number, pointer: bigint];
  /** `umfa_buffer_upload(buffer, offset, src, src.byteLength)`. */
  bufferUpload(buffer: bigint, offset: number, src: ArrayBufferView): number;
  /** `umfa_buffer_download(buffer, offset, dst, dst.byteLength)`. */
  bufferDownload(buffer: bigint, offset: number, dst: ArrayBufferView): number;
  /**
   * `umfa_attention_forward` on an encoded frame (slots Q, K, V, OUT, LSE). A slot's data is a
   * typed array (its memory is passed in place) or a `bigint` address (device memory).
   */
  forward(handle: bigint, frame: Frame): number;
  /** `umfa_attention_forward` on a worker thread; `frame` stays referenced until it settles. */
  forwardAsync(handle: bigint, frame: Frame): Promise<AsyncOutcome>;
  /** `umfa_attention_backward` on an encoded frame (slots Q..DV). */
  backward(handle: bigint, frame: Frame): number;
  /** `umfa_attention_backward` on a worker thread. */
  backwardAsync(handle: bigint, frame: Frame): Promise<AsyncOutcome>;
  /** `mfa_create_context` → [code, handle]. */
  mfaCreateContext(): [code: number, handle: bigint];
  /** `mfa_destroy_context`. */
  mfaDestroyContext(handle: bigint): void;
  /**
   * Wraps q, k, v and out with `mfa_buffer_from_ptr`, calls `mfa_attention_forward`, and
   * destroys the wrappers; returns the classic code.
   */
  mfaForward(
    handle: bigint,
    q: ArrayBufferView,
    k: ArrayBufferView,
    v: ArrayBufferView,
    out: ArrayBufferView,
    call: ClassicCall,
  ): number;
  /** `mfa_error_string(code)`. */
  mfaErrorString(code: number): string;
  /** The address the driver passes for a typed array's memory (for zero-copy tests). */
  addressOf(data: ArrayBufferView): bigint;
  /** The `data` addresses passed in each slot by the last synchronous call (for tests). */
  lastDataAddresses(): bigint[];
}
