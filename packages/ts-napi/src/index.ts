/**
 * `@umfa/napi`: umfa flash attention for Node.js through a Node-API addon (prebuilt for
 * Linux x64; rebuild with node-gyp elsewhere). Same API as `@umfa/koffi`: both are made by
 * `createBinding` of `@umfa/api` over their own driver.
 *
 * @example
 * ```ts
 * import { attention, bshd } from '@umfa/napi';
 * const q = bshd(new Float32Array(1 * 16 * 4 * 64), [1, 16, 4, 64]);
 * const { out, lse } = attention(q, q, q, { causal: true, returnLse: true });
 * ```
 *
 * @packageDocumentation
 */
import type { Binding } from '@umfa/api';
import { binding } from './binding.js';

export * from '@umfa/api';

export { BINDING } from './binding.js';

/**
 * An execution context: one backend, one device, a thread pool and scratch memory (see
 * `ContextBase` for its methods). Dispose it (`ctx.dispose()` or `using ctx = new Context()`);
 * otherwise a finalizer frees it.
 *
 * @example
 * ```ts
 * using ctx = new Context({ backend: 'cpu', numThreads: 2 });
 * const { out } = ctx.attention(q, k, v, { causal: true });
 * ```
 */
export class Context extends binding.Context {}

/** A classic (`mfa_*`) context for {@link flashAttentionForward}. */
export class MFAContext extends binding.MFAContext {}

/**
 * Forward attention on host tensors or device tensors (see `AttentionFunction`).
 *
 * @function
 */
export const attention: Binding['attention'] = binding.attention;

/**
 * {@link attention} on a worker thread (see `AttentionAsyncFunction`).
 *
 * @function
 */
export const attentionAsync: Binding['attentionAsync'] = binding.attentionAsync;

/**
 * Backward attention on host tensors or device tensors (see `AttentionBackwardFunction`).
 *
 * @function
 */
export const attentionBackward: Binding['attentionBackward'] = binding.attentionBackward;

/**
 * {@link attentionBackward} on a worker thread (see `AttentionBackwardAsyncFunction`).
 *
 * @function
 */
export const attentionBackwardAsync: Binding['attentionBackwardAsync'] = binding.attentionBackwardAsync;

/**
 * Classic forward attention (`mfa_attention_forward`; see `FlashAttentionForwardFunction`).
 *
 * @function
 */
export const flashAttentionForward: Binding['flashAttentionForward'] = binding.flashAttentionForward;

/**
 * The native library's version, e.g. `"0.1.0"` (`umfa_version_string`).
 *
 * @function
 */
export const version: () => string = binding.version;

/**
 * The ABI version of the loaded library (`umfa_abi_version`). Loading refuses a library whose
 * ABI version differs from `ABI_VERSION`.
 *
 * @function
 */
export const abiVersion: () => number = binding.abiVersion;

/**
 * Which backends can run here (`umfa_backend_available`).
 *
 * @function
 */
export const backends: Binding['backends'] = binding.backends;

/**
 * What the library was built with and detected at run time (`umfa_build_info`).
 *
 * @function
 */
export const buildInfo: () => string = binding.buildInfo;

/**
 * Where the native library was loaded from.
 *
 * @function
 */
export const libraryPath: () => string = binding.libraryPath;
