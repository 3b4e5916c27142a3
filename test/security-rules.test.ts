import { readFileSync } from 'node:fs';
import { assertFails, assertSucceeds, initializeTestEnvironment, type RulesTestEnvironment } from '@firebase/rules-unit-testing';
import { collection, deleteDoc, doc, getDoc, getDocs, setDoc, updateDoc, type Firestore as ClientFirestore } from 'firebase/firestore';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { emulatorHost } from './fixture.js';

/**
 * The shipped firestore.rules, loaded into the emulator, against the client SDK: nobody outside
 * the server SDKs may read or write the task and lock collections.
 */

let env: RulesTestEnvironment;

beforeAll(async () => {
  const [host, port] = emulatorHost().split(':');
  env = await initializeTestEnvironment({
    projectId: 'demo-oncetask-rules',
    firestore: { rules: readFileSync('firestore.rules', 'utf8'), host: host!, port: Number(port) },
  });
  await env.withSecurityRulesDisabled(async (ctx) => {
    const db = ctx.firestore() as unknown as ClientFirestore;
    await setDoc(doc(db, 'onceTasks/t1'), { id: 't1', env: 'default', kind: 'k', status: 'pending' });
    await setDoc(doc(db, 'onceTasks_keys/l1'), { env: 'default', kind: 'k', resourceKey: 'a', holder: null });
    await setDoc(doc(db, 'elsewhere/x'), { ok: true });
  });
});

afterAll(async () => {
  await env?.cleanup();
});

const clients: [string, () => ClientFirestore][] = [
  // The contexts hand out the compat type; the modular functions take it as a Firestore.
  ['signed-out', () => env.unauthenticatedContext().firestore() as unknown as ClientFirestore],
  ['signed-in', () => env.authenticatedContext('alice', { email: 'alice@example.com' }).firestore() as unknown as ClientFirestore],
];

describe.each(clients)('a %s client SDK user', (_who, client) => {
  it.each(['onceTasks', 'onceTasks_keys'])('can neither read nor list %s', async (name) => {
    const db = client();
    const id = name === 'onceTasks' ? 't1' : 'l1';
    await assertFails(getDoc(doc(db, name, id)));
    await assertFails(getDocs(collection(db, name)));
  });

  it.each(['onceTasks', 'onceTasks_keys'])('can neither create, update nor delete in %s', async (name) => {
    const db = client();
    const id = name === 'onceTasks' ? 't1' : 'l1';
    await assertFails(setDoc(doc(db, name, 'new'), { status: 'pending' }));
    await assertFails(updateDoc(doc(db, name, id), { status: 'succeeded' }));
    await assertFails(deleteDoc(doc(db, name, id)));
  });
});

describe('the rules harness', () => {
  it('does let the rules-disabled admin context read the seeded task (so the denials above are the rules)', async () => {
    await env.withSecurityRulesDisabled(async (ctx) => {
      await assertSucceeds(getDoc(doc(ctx.firestore() as unknown as ClientFirestore, 'onceTasks/t1')));
    });
  });
});
