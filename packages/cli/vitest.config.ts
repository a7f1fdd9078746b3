import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The CLI tests start subprocesses that each use the CPU; one file at a time keeps a small
    // machine responsive.
    fileParallelism: false,
  },
});
