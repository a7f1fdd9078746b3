/**
 * Argument parsing on top of `node:util` parseArgs: strict (unknown options are usage errors),
 * with helpers for integer lists such as `--seqlen 256,512,1024` or `--seqlen 256..4096` (powers
 * of two between the bounds).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function parse(args: string[], options: OptionSpec, allowPositionals = false): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, strict: true, allowPositionals, allowNegative: true } as ParseArgsConfig);
    return { values: r.values as Record<string, unknown>, positionals: r.positionals };
  } catch (e) {
    // parseArgs' messages are good; drop its hint about "--" which does not apply here.
    throw new UsageError((e as Error).message.replace(/\s*To specify a positional argument.*$/s, ''));
  }
}

/** A positive (or, with `min: 0`, non-negative) integer. */
export function int(name: string, value: unknown, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const s = String(value).trim();
  if (!/^\d+$/.test(s)) throw new UsageError(`--${name} must be an integer, got "${s}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be >= ${min}, got ${s}`);
  return n;
}

/**
 * A list of positive integers: `a,b,c`, and `lo..hi` for the powers of two from lo to hi
 * (lo itself need not be a power of two: lo, 2·lo, 4·lo, … ≤ hi). Repeated flags add up.
 */
export function intList(name: string, value: unknown, fallback: number[]): number[] {
  if (value === undefined) return fallback;
  const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(','));
  const out: number[] = [];
  for (const raw of parts) {
    const p = raw.trim();
    const range = /^(\d+)\.\.(\d+)$/.exec(p);
    if (range) {
      const lo = int(name, range[1], 1);
      const hi = int(name, range[2], 1);
      if (hi < lo) throw new UsageError(`--${name}: empty range ${p}`);
      for (let x = lo; x <= hi; x *= 2) out.push(x);
    } else {
      out.push(int(name, p, 1));
    }
  }
  if (!out.length) throw new UsageError(`--${name} needs at least one value`);
  return [...new Set(out)];
}

/** One of a fixed set of words, or a comma list of them when `list` is set. */
export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  const s = String(value);
  if (!(allowed as readonly string[]).includes(s)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}; got "${s}"`);
  return s as T;
}

export function listOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T[]): T[] {
  if (value === undefined) return fallback;
  const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(',')).map((s) => s.trim());
  return [...new Set(parts.map((p) => oneOf(name, p, allowed, allowed[0] as T)))];
}
