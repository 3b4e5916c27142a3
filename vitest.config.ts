import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/testing/**/*.test.ts'],
    // One Firestore emulator for the whole run; test files share it and
    // isolate themselves by environment name (see test/fixture.ts).
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Child processes rather than worker threads: gRPC channels and timers of
    // the Firestore SDK are torn down reliably when a fork exits.
    pool: 'forks',
    // The machines have 2 cores, and the emulator (a JVM) needs CPU too.
    maxWorkers: 2,
    minWorkers: 1,
    env: {
      // The library's pino logger reads this; keep test output readable.
      ONCE_TASK_LOG_LEVEL: 'silent',
    },
  },
});
