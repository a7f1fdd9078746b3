import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const cliRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = join(cliRoot, '..', '..');
export const bin = join(cliRoot, 'bin', 'umfa.js');
export const manifest = join(repoRoot, 'conformance', 'manifest.json');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `umfa ...args` as a subprocess (no TTY: pipes for stdout and stderr). */
export function umfa(args: string[], env: Record<string, string | undefined> = {}, cwd = cliRoot): RunResult {
  const base: Record<string, string | undefined> = { ...process.env, UMFA_NUM_THREADS: '2' };
  delete base.FORCE_COLOR;
  delete base.NO_COLOR;
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...base, ...env } as NodeJS.ProcessEnv, cwd, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Whether the native library can be loaded (the commands that compute need it). */
export const haveLibrary: boolean = (() => {
  const r = umfa(['info', '--json']);
  return r.code === 0;
})();

export const haveVectors = existsSync(manifest);

/** A minimal JSON Schema (draft 2020-12 subset) validator: type, const, enum, required, properties, items, minimum, maximum. */
export function validate(schema: Record<string, unknown>, value: unknown, path = '$'): string[] {
  const errors: string[] = [];
  const s = schema as {
    type?: string;
    const?: unknown;
    enum?: unknown[];
    required?: string[];
    properties?: Record<string, Record<string, unknown>>;
    items?: Record<string, unknown>;
    minimum?: number;
    maximum?: number;
  };
  const typeOk = (t: string) =>
    t === 'integer' ? Number.isInteger(value) : t === 'array' ? Array.isArray(value) : t === 'object' ? value !== null && typeof value === 'object' && !Array.isArray(value) : typeof value === t;
  if (s.type && !typeOk(s.type)) return [`${path}: expected ${s.type}, got ${JSON.stringify(value)}`];
  if ('const' in s && value !== s.const) errors.push(`${path}: expected ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(value)) errors.push(`${path}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${path}: ${value} < ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${path}: ${value} > ${s.maximum}`);
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const k of s.required ?? []) if (!(k in obj)) errors.push(`${path}: missing ${k}`);
    for (const [k, sub] of Object.entries(s.properties ?? {})) if (k in obj) errors.push(...validate(sub, obj[k], `${path}.${k}`));
  }
  if (Array.isArray(value) && s.items) value.forEach((v, i) => errors.push(...validate(s.items!, v, `${path}[${i}]`)));
  return errors;
}
