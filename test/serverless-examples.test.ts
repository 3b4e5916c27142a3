import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { drainServer } from '../examples/serverless/scheduler-drain.js';
import { onTaskCreated } from '../examples/serverless/on-task-created.js';
import { sendWelcomeEmail, workerManager } from '../examples/serverless/tasks.js';
import { uniqueEnv, useFirestore } from './fixture.js';
import { TEST_COLLECTION } from './support.js';

const db = useFirestore();

describe('serverless examples', () => {
  it('Cloud Scheduler ping: POST /drain runs what is due and answers with the result; a second ping meanwhile gets 409', async () => {
    const sent: string[] = [];
    const where = { env: uniqueEnv(), collection: TEST_COLLECTION };
    const manager = workerManager(db, { sent, ...where });
    await manager.createMany(sendWelcomeEmail, [1, 2, 3].map((n) => ({ userId: `u${n}`, email: `u${n}@example.com` })));
    const server = drainServer(manager, 20_000).listen(0);
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/drain`;
      const first = fetch(url, { method: 'POST' });
      await new Promise((r) => setTimeout(r, 20));
      expect((await fetch(url, { method: 'POST' })).status).toBe(409);
      const response = await first;
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ ran: 3, emptied: true, outcomes: { succeeded: 3 } });
      expect(sent.sort()).toEqual(['u1@example.com', 'u2@example.com', 'u3@example.com']);
      expect((await fetch(url.replace('/drain', '/other'))).status).toBe(404);
    } finally {
      server.close();
    }
  }, 30_000);

  it('Firestore trigger: a created task drains its kind; other documents are ignored', async () => {
    const where = { env: uniqueEnv(), collection: TEST_COLLECTION };
    const producer = workerManager(db, where);
    await producer.create(sendWelcomeEmail, { userId: 'u9', email: 'u9@example.com' });
    const created = (await db.collection(TEST_COLLECTION).where('env', '==', where.env).get()).docs[0]!;
    const result = await onTaskCreated({ data: created }, db, where);
    expect(result).toMatchObject({ ran: 1, emptied: true });
    expect((await producer.get('welcome:u9'))!.status).toBe('succeeded');
    expect(await onTaskCreated({ data: { data: () => ({ kind: 'not-ours' }) } }, db, where)).toBeNull();
    expect(await onTaskCreated({}, db, where)).toBeNull();
  }, 30_000);
});
