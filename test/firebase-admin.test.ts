import { deleteApp, initializeApp } from 'firebase-admin/app';
import { getFirestore } from 'firebase-admin/firestore';
import { afterAll, describe, expect, it } from 'vitest';
import { emulatorHost, waitFor } from './fixture.js';
import { jobTask, makeManager } from './support.js';

describe("firebase-admin's getFirestore()", () => {
  emulatorHost(); // sets FIRESTORE_EMULATOR_HOST for the admin SDK
  const app = initializeApp({ projectId: 'demo-oncetask' }, `oncetask-test-${process.pid}`);
  const firestore = getFirestore(app);
  afterAll(() => deleteApp(app));

  it('works as the manager Firestore: create, run, fenced outcome, read back', async () => {
    const m = makeManager(firestore);
    const at = new Date('2026-02-03T04:05:06Z');
    await m.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() - 1000) });
    m.handle(jobTask, (task) => ({ n: task.data.n, at }));
    m.start();
    const t = await waitFor(async () => {
      const task = await m.get('job-1');
      return task?.status === 'succeeded' ? task : undefined;
    });
    expect(t.result).toEqual({ n: 1, at });
    expect(await m.list({ limit: 5, status: 'succeeded' })).toMatchObject({ tasks: [{ id: 'job-1' }] });
  });
});
