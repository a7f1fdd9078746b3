import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Folder holding the umfa library (libumfa.1.dylib) for macOS on Intel (x64). */
export const libDir = join(dirname(fileURLToPath(import.meta.url)), 'lib');
