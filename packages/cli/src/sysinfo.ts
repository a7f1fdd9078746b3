/** Facts about the machine for `umfa info` and the `meta` of `umfa bench --json`. */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';

const SIMD_FLAGS = [
  'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16',
  'amx_tile', 'amx_bf16', 'amx_fp16', 'asimd', 'asimdhp', 'fphp', 'sve', 'sve2', 'bf16', 'i8mm', 'sme',
];

/** The SIMD-related feature flags the operating system reports for this CPU (Linux only). */
export function cpuSimdFlags(): string[] {
  if (process.platform !== 'linux' || !existsSync('/proc/cpuinfo')) return [];
  const text = readFileSync('/proc/cpuinfo', 'utf8');
  const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text)?.[1] ?? '';
  const have = new Set(line.split(/\s+/));
  return SIMD_FLAGS.filter((f) => have.has(f));
}

export interface MachineInfo {
  platform: string;
  arch: string;
  cpu: string;
  cores: number;
  memoryBytes: number;
  node: string;
  hostname?: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    platform: process.platform,
    arch: process.arch,
    cpu: (cpus[0]?.model ?? 'unknown').replace(/\s+/g, ' ').trim(),
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    memoryBytes: os.totalmem(),
    node: process.version,
  };
}
