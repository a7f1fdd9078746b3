import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Folder holding the umfa library (libumfa.so.1) for Linux arm64 (aarch64) with glibc. */
export const libDir = join(dirname(fileURLToPath(import.meta.url)), 'lib');
