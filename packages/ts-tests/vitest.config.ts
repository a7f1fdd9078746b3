import { defineConfig } from 'vitest/config';

// One suite (test/bindings.test.ts and its neighbours; test/device.test.ts runs CUDA contexts on a
// mock backend), run once per binding; the check that both bindings declare one API
// (test/surface.test.ts); and the packed-tarball install test.
export default defineConfig({
  test: {
    root: import.meta.dirname,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    execArgv: ['--expose-gc'],
    // One file at a time: the suites time calls (the event-loop test compares a synchronous and
    // an asynchronous call), which a second file computing in parallel would disturb.
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: { name: 'koffi', include: ['test/bindings.test.ts', 'test/bindings-usage.test.ts', 'test/bad-cases.test.ts', 'test/device.test.ts', 'test/hostile.test.ts'], env: { UMFA_TS_BINDING: 'koffi' } },
      },
      {
        extends: true,
        test: { name: 'napi', include: ['test/bindings.test.ts', 'test/bindings-usage.test.ts', 'test/bad-cases.test.ts', 'test/device.test.ts', 'test/hostile.test.ts'], env: { UMFA_TS_BINDING: 'napi' } },
      },
      {
        extends: true,
        test: { name: 'surface', include: ['test/surface.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'pack', include: ['test/pack.test.ts'], testTimeout: 600_000, hookTimeout: 600_000 },
      },
    ],
  },
});
