/**
 * The binding the CLI runs on: `@umfa/koffi` (pure TypeScript over koffi), imported on first use
 * so that `--help` and `--version` work without the native library.
 */
import type * as Koffi from '@umfa/koffi';

export type Binding = typeof Koffi;

let loaded: Promise<Binding> | undefined;

/** The `@umfa/koffi` module (loading koffi; the native library itself loads on first call). */
export function binding(): Promise<Binding> {
  loaded ??= import('@umfa/koffi');
  return loaded;
}

/** The binding's package name and version, read from its package.json. */
export async function bindingVersion(): Promise<string> {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const pkg = require('@umfa/koffi/package.json') as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}
