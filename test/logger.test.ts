import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { defaultLogFormat, defaultLogger } from '../src/logger.js';
import { emulatorHost, useFirestore } from './fixture.js';

useFirestore();

/** A destination that keeps the lines written to it. */
function lines(): { stream: Writable; parsed(): Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({ write: (chunk: Buffer, _enc, done) => (chunks.push(chunk.toString()), done()) });
  return { stream, parsed: () => chunks.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('log format', () => {
  it('is Cloud Logging\'s on Cloud Run (K_SERVICE set) and pino\'s elsewhere, unless ONCE_TASK_LOG_FORMAT says', () => {
    expect(defaultLogFormat({ K_SERVICE: 'worker' })).toBe('cloud-logging');
    expect(defaultLogFormat({})).toBe('pino');
    expect(defaultLogFormat({ K_SERVICE: 'worker', ONCE_TASK_LOG_FORMAT: 'pino' })).toBe('pino');
    expect(defaultLogFormat({ ONCE_TASK_LOG_FORMAT: 'cloud-logging' })).toBe('cloud-logging');
  });

  it('writes severity, message and an RFC 3339 time in Cloud Logging\'s shape', () => {
    const out = lines();
    const level = process.env.ONCE_TASK_LOG_LEVEL;
    process.env.ONCE_TASK_LOG_LEVEL = 'info'; // the test run is silent otherwise
    const log = defaultLogger('cloud-logging', out.stream).child({ kind: 'email' });
    if (level === undefined) delete process.env.ONCE_TASK_LOG_LEVEL;
    else process.env.ONCE_TASK_LOG_LEVEL = level;
    log.warn({ taskId: 't1' }, 'attempt failed; will retry');
    log.error({ err: new Error('boom') }, 'no retries left');
    const [warn, error] = out.parsed();
    expect(warn).toMatchObject({ severity: 'WARNING', message: 'attempt failed; will retry', kind: 'email', taskId: 't1', name: 'oncetask' });
    expect(warn).not.toHaveProperty('level');
    expect(warn).not.toHaveProperty('msg');
    expect(new Date(warn!.time as string).toISOString()).toBe(warn!.time);
    expect(error).toMatchObject({ severity: 'ERROR', message: 'no retries left', err: { message: 'boom' } });
  });

  it('a manager on Cloud Run logs in that shape by default', () => {
    const code = `
      import { Firestore } from '@google-cloud/firestore';
      import { OnceTaskManager } from './src/index.ts';
      const m = new OnceTaskManager({ firestore: new Firestore({ projectId: 'demo-oncetask' }), env: 'log-shape', listen: false });
      m.start();
      await m.stop();
      process.exit(0);`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost(), K_SERVICE: 'worker', ONCE_TASK_LOG_LEVEL: 'info', ONCE_TASK_LOG_FORMAT: '' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const logged = child.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.find((l) => l.message === 'oncetask: workers stopped')).toMatchObject({ severity: 'INFO', env: 'log-shape' });
  }, 40_000);
});
