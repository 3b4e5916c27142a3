import { describe, expect, it } from 'vitest';
import { fixedDelay, InvalidOptionsError, OnceTaskManager, type TaskOutcome } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { capturingLogger, makeManager } from './support.js';
import { jobTask, keyedTask } from './tasks.js';

const db = useFirestore();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A manager whose hooks write down every call. */
function recordingManager(extra: { beforeRun?: (id: string, attempt: number) => unknown; hookTimeoutMs?: number } = {}) {
  const failed: { id: string; message: string; final: boolean; retryAt: Date | null }[] = [];
  const settled: { id: string; outcome: TaskOutcome }[] = [];
  const m = makeManager(db, {
    ...(extra.hookTimeoutMs ? { hookTimeoutMs: extra.hookTimeoutMs } : {}),
    hooks: {
      onTaskFailed: (task, error, info) => void failed.push({ id: task.id, message: error.message, ...info }),
      onTaskSettled: (task, outcome) => void settled.push({ id: task.id, outcome }),
      ...(extra.beforeRun ? { beforeRun: (task) => extra.beforeRun!(task.id, task.attempt) } : {}),
    },
  });
  return { m, failed, settled };
}

describe('hooks', () => {
  it('onTaskFailed and onTaskSettled see retries, final failures and successes; the record keeps the code and stack', async () => {
    const { m, failed, settled } = recordingManager();
    m.handle(
      jobTask,
      (task, ctx) => {
        if (ctx.attempt <= task.data.failTimes) throw Object.assign(new Error(`smtp down (${ctx.attempt})`), { code: 'SMTP_DOWN' });
      },
      { retry: fixedDelay({ maxAttempts: 2, delayMs: 10 }) },
    );
    m.start();
    await m.create(jobTask, { n: 1, failTimes: 1 }); // fails once, then succeeds
    await m.create(jobTask, { n: 2, failTimes: 5 }); // fails both attempts
    await waitFor(() => settled.filter((s) => s.outcome === 'succeeded' || s.outcome === 'failed').length === 2);
    expect(failed.filter((f) => f.id === 'job-1')).toEqual([{ id: 'job-1', message: 'smtp down (1)', final: false, retryAt: expect.any(Date) }]);
    expect(failed.filter((f) => f.id === 'job-2').map((f) => f.final)).toEqual([false, true]);
    expect(failed.find((f) => f.id === 'job-2' && f.final)!.retryAt).toBeNull();
    expect(settled.filter((s) => s.id === 'job-1').map((s) => s.outcome)).toEqual(['retrying', 'succeeded']);
    expect(settled.filter((s) => s.id === 'job-2').map((s) => s.outcome)).toEqual(['retrying', 'failed']);
    // Hooks run after the outcome is recorded.
    const task = (await m.get('job-2'))!;
    expect(task.status).toBe('failed');
    expect(task.errors[0]!.code).toBe('SMTP_DOWN');
    expect(task.errors[0]!.stack).toMatch(/^Error: smtp down \(1\)\n\s+at /);
  });

  it('a hook that throws or hangs never breaks the worker: logged, not waited for past hookTimeoutMs', async () => {
    const logger = capturingLogger();
    const m = makeManager(db, {
      logger,
      hookTimeoutMs: 200,
      hooks: {
        onTaskFailed: () => {
          throw new Error('reporter down');
        },
        onTaskSettled: () => new Promise(() => undefined), // never settles
      },
    });
    m.handle(jobTask, (task) => {
      if (task.data.failTimes > 0) throw new Error('boom');
    }, { retry: fixedDelay({ maxAttempts: 1 }), concurrency: 1 });
    m.start();
    await m.createMany(jobTask, [{ n: 1, failTimes: 1 }, { n: 2 }, { n: 3 }]);
    await waitFor(async () => (await m.list({ kind: jobTask, limit: 10 })).tasks.every((t) => t.status === 'succeeded' || t.status === 'failed'));
    expect((await m.get('job-1'))!.status).toBe('failed');
    await waitFor(() => logger.lines().filter((l) => l.includes('hook did not return in time')).length === 3);
    expect(logger.lines()).toContain('warn oncetask: hook threw; ignored');
    const t0 = Date.now();
    await m.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('beforeRun runs before each attempt; its throw fails that attempt like a handler throw, and its hang fails it with HOOK_TIMEOUT', async () => {
    const ran: string[] = [];
    const { m, settled } = recordingManager({
      beforeRun: async (id, attempt) => {
        if (id === 'job-1' && attempt === 1) throw new Error('quota check failed');
        if (id === 'job-2' && attempt === 1) await sleep(10_000);
      },
      hookTimeoutMs: 300,
    });
    const m2 = m;
    m2.handle(jobTask, (task, ctx) => void ran.push(`${task.id}#${ctx.attempt}`), { retry: fixedDelay({ maxAttempts: 2, delayMs: 10 }), concurrency: 2 });
    m2.start();
    await m2.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    await waitFor(() => settled.filter((s) => s.outcome === 'succeeded').length === 2, { timeoutMs: 10_000 });
    expect(ran.sort()).toEqual(['job-1#2', 'job-2#2']); // the failed first attempts never called the handler
    const [one, two] = (await m2.getMany(['job-1', 'job-2']))!;
    expect(one!.errors.map((e) => e.message)).toEqual(['quota check failed']);
    expect(two!.errors.map((e) => e.code)).toEqual(['HOOK_TIMEOUT']);
  }, 20_000);

  it('in a group, a task whose beforeRun throws fails alone; the rest of the group runs', async () => {
    const calls: string[][] = [];
    const { m, failed } = recordingManager({ beforeRun: (id) => (id === 'keyed-2' ? Promise.reject(new Error('not allowed')) : undefined) });
    m.handleGroup(keyedTask, (tasks) => void calls.push(tasks.map((t) => t.id)), { retry: fixedDelay({ maxAttempts: 1 }) });
    await m.createMany(keyedTask, [1, 2, 3].map((n) => ({ n, key: 'acct' })));
    m.start();
    await waitFor(async () => (await m.getMany(['keyed-1', 'keyed-2', 'keyed-3'])).every((t) => t!.status === 'succeeded' || t!.status === 'failed'));
    expect(calls).toEqual([['keyed-1', 'keyed-3']]);
    expect((await m.get('keyed-2'))!.status).toBe('failed');
    expect(failed.map((f) => [f.id, f.message, f.final])).toEqual([['keyed-2', 'not allowed', true]]);
  });

  it('a task handed back on stop() settles as released', async () => {
    const { m, settled } = recordingManager();
    let started = false;
    m.handle(jobTask, async (_task, ctx) => {
      started = true;
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    });
    m.start();
    await m.create(jobTask, { n: 1 });
    await waitFor(() => started);
    await m.stop({ graceMs: 50 });
    expect(settled).toEqual([{ id: 'job-1', outcome: 'released' }]);
    expect((await m.get('job-1'))!.status).toBe('pending');
  });

  it('refuses hooks that are not functions, and unknown hook names', () => {
    expect(() => new OnceTaskManager({ firestore: db, hooks: { onTaskFailed: 'sentry' } as never })).toThrow(InvalidOptionsError);
    expect(() => new OnceTaskManager({ firestore: db, hooks: { onFailed: () => undefined } as never })).toThrow(/unknown option "onFailed" \(did you mean "onTaskFailed"\?\)/);
  });
});
