import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Folder holding libumfa.so.1 for Linux x64 (glibc). */
export const libDir = join(dirname(fileURLToPath(import.meta.url)), 'lib');
