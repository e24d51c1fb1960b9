import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Network tests bind real sockets; forks keep each file's sockets and fds apart.
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
