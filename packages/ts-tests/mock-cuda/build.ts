// Builds the mock CUDA backend (mock_cuda.cpp) once per content: the library lands in the
// system's temporary folder under a hash of its sources, so repeated test runs (and the CLI's
// tests) reuse it. Point UMFA_CUDA_LIB at the returned path before libumfa first looks for CUDA.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');

/** The path of the built mock backend (compiled with $CXX or c++ on first use). */
export function mockCudaLibrary(): string {
  const source = join(here, 'mock_cuda.cpp');
  const inputs = [source, join(repo, 'core', 'src', 'backend.h'), join(repo, 'include', 'umfa.h')];
  const hash = createHash('sha256');
  for (const f of inputs) hash.update(readFileSync(f));
  const dir = join(tmpdir(), `umfa-mock-cuda-${hash.digest('hex').slice(0, 16)}`);
  const lib = join(dir, 'libumfa_mock_cuda.so');
  if (existsSync(lib)) return lib;
  mkdirSync(dir, { recursive: true });
  const partial = join(dir, `libumfa_mock_cuda.${process.pid}.so`);
  const cxx = process.env['CXX'] || 'c++';
  execFileSync(cxx, [
    '-std=c++17', '-O1', '-fPIC', '-shared', '-fvisibility=hidden', '-Wall', '-Wextra',
    '-I', join(repo, 'include'), '-I', join(repo, 'core', 'src'),
    source, '-o', partial, '-ldl', '-Wl,--no-undefined',
  ], { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(partial, lib); // atomic: a concurrent build never sees half a library
  return lib;
}
