import { statusName, mfaStatusName, type StatusName } from './status.js';

/**
 * The error every umfa call throws when the native core (or the binding, for input it cannot
 * represent in the C ABI) rejects a call. Outputs are never written when this is thrown.
 *
 * @example
 * ```ts
 * try { attention(q, k, v); } catch (e) {
 *   if (e instanceof UmfaError && e.status === Status.SHAPE_MISMATCH) console.error(e.message);
 * }
 * ```
 */
export class UmfaError extends Error {
  /** The numeric status (one of {@link Status}). */
  readonly status: number;
  /** The status name without prefix, such as `"SHAPE_MISMATCH"`. */
  readonly statusName: StatusName | 'UNKNOWN';
  /** The status as a Node-style error code string, such as `"UMFA_STATUS_SHAPE_MISMATCH"`. */
  readonly code: string;

  /**
   * @param status - the status code returned by the core
   * @param message - the core's message for the failure (from `umfa_last_error`)
   */
  constructor(status: number, message: string) {
    const name = statusName(status);
    super(message || `umfa call failed with status ${status} (${name})`);
    this.name = 'UmfaError';
    this.status = status;
    this.statusName = name;
    this.code = `UMFA_STATUS_${name}`;
  }
}

/**
 * Thrown when the native library cannot be found or loaded, or when the library found implements
 * a different ABI version than the binding targets. `tried` lists every location considered.
 */
export class UmfaLoadError extends Error {
  /** Every location tried, each with what happened there. */
  readonly tried: readonly string[];

  /**
   * @param message - what went wrong
   * @param tried - the locations tried, in order
   */
  constructor(message: string, tried: readonly string[] = []) {
    super(tried.length > 0 ? `${message}\nTried:\n${tried.map((t) => `  - ${t}`).join('\n')}` : message);
    this.name = 'UmfaLoadError';
    this.tried = tried;
  }
}

/** The error thrown by the classic API (`flashAttentionForward` of `@umfa/koffi` and `@umfa/napi`) for a classic error code. */
export class MFAError extends Error {
  /** The classic numeric code (one of {@link MFAStatus}). */
  readonly status: number;
  /** The classic code name, such as `"MFA_ERROR_INVALID_ARGS"`. */
  readonly code: string;

  /**
   * @param status - the classic error code
   * @param message - the core's detailed message
   */
  constructor(status: number, message: string) {
    const name = mfaStatusName(status);
    super(message || name);
    this.name = 'MFAError';
    this.status = status;
    this.code = name;
  }
}
