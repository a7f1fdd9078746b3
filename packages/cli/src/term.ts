/**
 * Terminal helpers: colour only when the stream is a TTY and NO_COLOR is unset (or forced with
 * FORCE_COLOR), a progress bar that draws only on a TTY, and stderr error printing.
 */
import type { WriteStream } from 'node:tty';

export interface Style {
  readonly enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

/** Whether to colour output written to `stream` (see https://no-color.org). */
export function colorEnabled(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env, flag?: boolean): boolean {
  if (flag === false) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false') return true;
  if (env.TERM === 'dumb') return false;
  return Boolean(stream.isTTY);
}

export function makeStyle(enabled: boolean): Style {
  const wrap = (open: number, close: number) => (s: string) => (enabled ? `\u001b[${open}m${s}\u001b[${close}m` : s);
  return {
    enabled,
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}

/** Visible width of a string that may hold ANSI colour codes. */
export function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u001b\[[0-9;]*m/g, '').length;
}

/** A one-line progress bar on stderr; a no-op unless stderr is a TTY. */
export class Progress {
  readonly #stream: NodeJS.WriteStream;
  readonly #total: number;
  readonly #active: boolean;
  #done = 0;

  constructor(total: number, stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.#total = total;
    this.#active = Boolean(stream.isTTY) && total > 0;
  }

  get active(): boolean {
    return this.#active;
  }

  /** Shows `label` against the number of steps finished so far. */
  update(label: string): void {
    if (!this.#active) return;
    const cols = (this.#stream as WriteStream).columns || 80; // 0 on some pseudo-terminals
    const width = 24;
    const filled = Math.round((this.#done / this.#total) * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#done}/${this.#total} `;
    const line = (bar + label).slice(0, Math.max(10, cols - 1));
    this.#stream.write(`\r\u001b[2K${line}`);
  }

  /** Marks one step finished. */
  tick(label = ''): void {
    this.#done++;
    this.update(label);
  }

  /** Clears the bar. */
  end(): void {
    if (this.#active) this.#stream.write('\r\u001b[2K');
  }
}
