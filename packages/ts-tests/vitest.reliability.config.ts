import { defineConfig } from 'vitest/config';

// The reliability suite (scripts/stress.sh): the shared bad cases through each binding, and
// both bindings' asynchronous calls in flight together in one process.
export default defineConfig({
  test: {
    root: import.meta.dirname,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'bad-cases-koffi', include: ['test/bad_cases.test.ts'], env: { UMFA_TS_BINDING: 'koffi' } },
      },
      {
        extends: true,
        test: { name: 'bad-cases-napi', include: ['test/bad_cases.test.ts'], env: { UMFA_TS_BINDING: 'napi' } },
      },
      {
        extends: true,
        test: { name: 'koffi-and-napi', include: ['test/threads.test.ts'] },
      },
    ],
  },
});
