/**
 * `@umfa/koffi/internal`: the public API plus the internals the package's tests and benchmarks use
 * (the raw driver, the ABI marshalling of `@umfa/api/internal`). Not part of the API: it may
 * change in any release.
 *
 * @packageDocumentation
 */
import type { Driver } from '@umfa/api/internal';
import { binding } from './binding.js';

export * from './index.js';
export * from '@umfa/api/internal';

/** The driver (raw entry points) of this binding. */
export const _driver: () => Driver = binding.driver;
