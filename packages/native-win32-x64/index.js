import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Folder holding the umfa library (umfa.dll) for Windows x64. */
export const libDir = join(dirname(fileURLToPath(import.meta.url)), 'lib');
