/**
 * Status codes returned by every fallible function of the umfa C ABI (`umfa_status`), with the
 * same numeric values as `include/umfa.h`. `0` is success; anything else is an error, surfaced in
 * TypeScript as an {@link UmfaError} whose `status` is one of these values.
 */
export const Status = {
  /** Success. */
  OK: 0,
  /** The context argument was NULL. */
  NULL_CONTEXT: 1,
  /** A required pointer argument (tensor, data pointer, out-parameter) was NULL. */
  NULL_POINTER: 2,
  /** An argument's value is out of its allowed range (e.g. negative window, bad enum). */
  INVALID_ARGUMENT: 3,
  /** A tensor has the wrong rank for its role. */
  INVALID_RANK: 4,
  /** Tensor shapes disagree with each other. */
  SHAPE_MISMATCH: 5,
  /** The query head count is not a multiple of the key/value head count. */
  HEADS_NOT_DIVISIBLE: 6,
  /** head_dim is outside 1..256 (or unsupported by the chosen backend). */
  HEAD_DIM_OUT_OF_RANGE: 7,
  /** A stride is negative, or an output tensor's strides make elements overlap. */
  INVALID_STRIDE: 8,
  /** A dtype is unknown, or not allowed for that tensor's role. */
  UNSUPPORTED_DTYPE: 9,
  /** A tensor lives on a device the context does not run on. */
  DEVICE_MISMATCH: 10,
  /** An option struct's size is not one this library knows. */
  STRUCT_VERSION: 11,
  /** A size computation overflows 64 bits or the address space. */
  SIZE_OVERFLOW: 12,
  /** Memory could not be allocated. */
  OUT_OF_MEMORY: 13,
  /** The requested backend is not available in this build or on this machine. */
  BACKEND_UNAVAILABLE: 14,
  /** A valid combination of options that this backend does not implement. */
  UNSUPPORTED: 15,
  /** The backend failed while running. */
  BACKEND_ERROR: 16,
  /** The call needs more scratch memory than the context's workspace limit allows. */
  WORKSPACE_LIMIT: 17,
  /** cu_seqlens contents are not a valid non-decreasing offset list within the tensors. */
  INVALID_SEQLENS: 18,
  /** A handle is not valid for this use. */
  INVALID_HANDLE: 19,
  /** A bug in umfa. */
  INTERNAL: 20,
} as const;

/** The name of a status code, such as `"SHAPE_MISMATCH"`. */
export type StatusName = keyof typeof Status;

const names: string[] = [];
for (const [name, value] of Object.entries(Status)) names[value] = name;

/**
 * Returns the name of a status code (`5` → `"SHAPE_MISMATCH"`), or `"UNKNOWN"` for a value this
 * package does not know (a newer library may add codes; treat them as errors).
 */
export function statusName(status: number): StatusName | 'UNKNOWN' {
  return (names[status] as StatusName | undefined) ?? 'UNKNOWN';
}

/** Error codes of the classic (`mfa_*`) API, with the values of `include/umfa.h`. */
export const MFAStatus = {
  /** Success. */
  SUCCESS: 0,
  /** Invalid arguments (including buffers too small for the shapes). */
  ERROR_INVALID_ARGS: 1,
  /** Memory could not be allocated. */
  ERROR_MEMORY_ALLOCATION: 2,
  /** No supported device. */
  ERROR_DEVICE_NOT_SUPPORTED: 3,
  /** Kernel compilation failed (kept for compatibility). */
  ERROR_KERNEL_COMPILATION: 4,
  /** Execution failed. */
  ERROR_EXECUTION_FAILED: 5,
} as const;

const mfaNames: string[] = [];
for (const [name, value] of Object.entries(MFAStatus)) mfaNames[value] = `MFA_${name}`;

/** Returns the name of a classic error code (`1` → `"MFA_ERROR_INVALID_ARGS"`). */
export function mfaStatusName(code: number): string {
  return mfaNames[code] ?? 'MFA_ERROR_UNKNOWN';
}
