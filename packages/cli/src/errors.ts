/** Exit codes of `umfa`. */
export const Exit = {
  /** Success. */
  OK: 0,
  /** The command ran and failed: a check failed, a vector mismatched, the core returned an error. */
  FAILURE: 1,
  /** Bad command line: unknown command or option, missing or malformed value. */
  USAGE: 2,
} as const;

/** A command-line mistake: printed with the command's usage hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure that has already been explained to the user; only sets the exit code. */
export class FailureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FailureError';
  }
}

/** The message to print for any error: the core's message and status for `UmfaError`. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    if (e.name === 'UmfaError' && typeof code === 'string') return `${e.message} (${code})`;
    return e.message;
  }
  return String(e);
}

/**
 * `umfa check` passes the vectors as host memory (typed arrays), which only the CPU backend
 * reads: a context that resolved to another backend (`auto` on a machine with a GPU) would fail
 * every case with DEVICE_MISMATCH. Say so once.
 */
export function requireHostBackend(command: string, backend: string, requested: string): void {
  if (backend === 'cpu' || backend === 'metal') return; // Metal reads host memory (unified)
  throw new FailureError(
    `--backend ${requested} gave a ${backend} context, but umfa ${command} passes host memory, which the ` +
      `${backend} backend does not read; use --backend cpu here (umfa bench runs on CUDA through device tensors)`,
  );
}
