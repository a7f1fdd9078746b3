import { parse } from '../args.js';
import { binding, bindingVersion } from '../binding.js';
import type { Io } from '../context.js';
import { Exit } from '../errors.js';
import { cpuSimdFlags, machineInfo } from '../sysinfo.js';
import { formatBytes } from '../table.js';
import { cliVersion } from '../version.js';

export const HELP = `umfa info — what the installed umfa library is and what it found on this machine

Usage:
  umfa info [--json]

Prints the library version and ABI version, the library file that was loaded, what it was built
with (umfa_build_info: SIMD level, CUDA and Metal libraries or why they are absent), each backend
with its availability and device count (and, for CUDA and Metal, the library loaded or why there
is none: Metal runs on Apple GPUs; on Linux only a simulated Metal backend named by UMFA_METAL_LIB,
for tests), the CPU threads a default context uses, and the CPU's SIMD features as the operating
system reports them.

Options:
      --json      machine-readable output
  -h, --help      show this help`;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } });
  const umfa = await binding();
  const version = umfa.version();
  const abi = umfa.abiVersion();
  const build = umfa.buildInfo();
  const libraryPath = umfa.libraryPath();
  const backends = umfa.backends();
  let threads: number | null = null;
  {
    const ctx = new umfa.Context({ backend: 'cpu' });
    try {
      threads = ctx.numThreads;
    } finally {
      ctx.dispose();
    }
  }
  const machine = machineInfo();
  const simd = cpuSimdFlags();
  const info = {
    version,
    abiVersion: abi,
    bindingAbiVersion: umfa.ABI_VERSION,
    library: libraryPath,
    binding: await bindingVersion(),
    cli: cliVersion(),
    buildInfo: build,
    backends,
    metal: { ...(backends.find((b) => b.name === 'metal') ?? { available: false, deviceCount: 0 }), state: backendState(build, 'metal') },
    cpu: { model: machine.cpu, cores: machine.cores, threads, simd },
    machine,
  };
  if (values.json) {
    io.print(JSON.stringify(info, null, 2));
    return Exit.OK;
  }
  const s = io.style;
  const key = (k: string) => s.bold(k.padEnd(10));
  io.print(`${key('umfa')}${version} (ABI ${abi})`);
  io.print(`${key('library')}${libraryPath}`);
  io.print(`${key('binding')}${info.binding}, @umfa/cli ${info.cli}, Node ${process.version}`);
  // umfa_build_info() is one line of "; "-separated parts: one per line here.
  const parts = splitTopLevel(build);
  parts.forEach((part, i) => io.print(`${i === 0 ? key('build') : ' '.repeat(10)}${part}`));
  io.print(key('backends').trimEnd());
  for (const b of backends) {
    const state = b.available ? s.green('available') : s.dim('unavailable');
    const devices = `${b.deviceCount} device${b.deviceCount === 1 ? '' : 's'}`;
    const detail = b.name === 'cpu' ? '' : backendState(build, b.name);
    const extra =
      b.name === 'cpu' && threads !== null ? `, ${threads} thread${threads === 1 ? '' : 's'}` : detail ? ` (${detail})` : '';
    io.print(`  ${b.name.padEnd(6)}${state.padEnd(s.enabled ? 20 : 12)}${devices}${extra}`);
  }
  io.print(`${key('cpu')}${machine.cpu}, ${machine.cores} logical core${machine.cores === 1 ? '' : 's'}, ${formatBytes(machine.memoryBytes)} memory`);
  io.print(`${key('simd')}${simd.length ? simd.join(' ') : '(not reported by the OS)'}`);
  return Exit.OK;
}

/**
 * What umfa_build_info says of a GPU backend ("cuda: ...", "metal: ..."): the library it loaded
 * and its devices, or why it is absent; "" when the library does not say (an older libumfa).
 */
export function backendState(build: string, name: string): string {
  const part = splitTopLevel(build).find((p) => p.startsWith(`${name}: `));
  return part === undefined ? '' : part.slice(name.length + 2);
}

/** Splits at "; " outside parentheses ("a; b (c; d); e" gives a, b (c; d), e). */
export function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth = Math.max(0, depth - 1);
    else if (ch === ';' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter((p) => p.length > 0);
}
