import { describe, expect, it } from 'vitest';
import { startEmulator } from '../src/testing/emulator.js';
import { clearData, emulatorHost, TEST_PROJECT_ID, uniqueEnv, useFirestore, waitFor } from './fixture.js';

// A project of its own, so clearing it cannot touch other test files' data.
const CLEAR_PROJECT_ID = 'demo-oncetask-clear';

describe('emulator harness', () => {
  const db = useFirestore();
  const clearDb = useFirestore(CLEAR_PROJECT_ID);

  it('reads back a document written through testFirestore()', async () => {
    const ref = db.collection(uniqueEnv('harness')).doc('a');
    await ref.set({ n: 1, s: 'x', nested: { ok: true } });
    const snap = await ref.get();
    expect(snap.exists).toBe(true);
    expect(snap.data()).toEqual({ n: 1, s: 'x', nested: { ok: true } });
  });

  it('gives a different uniqueEnv() each call', () => {
    const a = uniqueEnv();
    const b = uniqueEnv();
    expect(a).toMatch(/^test-[0-9a-f]{8}$/);
    expect(b).not.toBe(a);
    expect(uniqueEnv('w')).toMatch(/^w-[0-9a-f]{8}$/);
  });

  it('clearEmulator removes the documents of one project only', async () => {
    const name = uniqueEnv('clear');
    const doomed = clearDb.collection(name).doc('d');
    const kept = db.collection(name).doc('k');
    await Promise.all([doomed.set({ v: 1 }), kept.set({ v: 2 })]);
    expect((await doomed.get()).exists).toBe(true);

    await clearData(CLEAR_PROJECT_ID);

    expect((await doomed.get()).exists).toBe(false);
    expect((await kept.get()).data()).toEqual({ v: 2 });
  });

  it('startEmulator reuses FIRESTORE_EMULATOR_HOST and does not stop it', async () => {
    const host = emulatorHost();
    expect(process.env.FIRESTORE_EMULATOR_HOST).toBe(host);
    const emulator = await startEmulator();
    expect(emulator).toMatchObject({ host, projectId: TEST_PROJECT_ID, startedHere: false });
    await emulator.stop();
    const res = await fetch(`http://${host}/`);
    expect(res.ok).toBe(true);
  });

  it('waitFor returns the first truthy value and times out with the message', async () => {
    let calls = 0;
    await expect(waitFor(() => (++calls >= 3 ? calls : undefined), { intervalMs: 1 })).resolves.toBe(3);
    await expect(waitFor(() => false, { timeoutMs: 50, message: 'never true' })).rejects.toThrow(
      /timed out after 50 ms: never true/,
    );
  });
});
