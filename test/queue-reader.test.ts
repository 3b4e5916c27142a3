/**
 * How the queue reader keeps heads handed over to it (src/worker/queue-reader.ts), without a
 * backend: a stub store that is never asked.
 */
import { describe, expect, it } from 'vitest';
import { Timestamp } from '@google-cloud/firestore';
import type { LeaseProtocol } from '../src/lease/protocol.js';
import { Shards } from '../src/store/shards.js';
import type { TaskStore, VersionedTask } from '../src/store/task-store.js';
import { QueueReader } from '../src/worker/queue-reader.js';
import { capturingLogger } from './support.js';

const store = { env: 'stub', shards: new Shards(1, 'stub') } as unknown as TaskStore;
const head = (docId: string, dueAgoMs = 0): VersionedTask =>
  ({ docId, task: { waitUntil: new Date(Date.now() - dueAgoMs), seq: 0 }, updateTime: { seconds: 1, nanoseconds: 0 } as Timestamp }) as unknown as VersionedTask;

describe('QueueReader hand-overs', () => {
  it("keeps only the listener's latest head: the head it showed before has left the due queue", () => {
    const reader = new QueueReader(store, {} as LeaseProtocol, 'job', capturingLogger(), Date.now);
    reader.offer([head('a')], true);
    reader.offer([head('b')], true);
    expect(reader.takeBuffered().map((t) => t.docId)).toEqual(['b']);
  });

  it('keeps every task handed over by a local create, next to the latest listener head', () => {
    const reader = new QueueReader(store, {} as LeaseProtocol, 'job', capturingLogger(), Date.now);
    reader.offer([head('c')], false);
    reader.offer([head('l1')], true);
    reader.offer([head('d')], false);
    reader.offer([head('l2')], true);
    expect(reader.takeBuffered().map((t) => t.docId)).toEqual(['l2', 'd', 'c']);
  });

  it('calls a round of fresh heads a trickle, and a head that waited seconds a backlog', () => {
    const reader = new QueueReader(store, {} as LeaseProtocol, 'job', capturingLogger(), Date.now);
    reader.offer([head('fresh', 20)], true);
    reader.takeBuffered();
    expect(reader.lastTakeWasFreshHandOvers(Date.now())).toBe(true);
    reader.offer([head('old', 5000)], true);
    reader.takeBuffered();
    expect(reader.lastTakeWasFreshHandOvers(Date.now())).toBe(false);
    reader.takeBuffered(); // nothing handed over: not a trickle round
    expect(reader.lastTakeWasFreshHandOvers(Date.now())).toBe(false);
  });

  it("skips a task the listener shows at the version this worker claimed it from (its answer lags the claim), not one changed since", () => {
    const reader = new QueueReader(store, {} as LeaseProtocol, 'job', capturingLogger(), Date.now);
    const at = (docId: string, seconds: number): VersionedTask => ({ ...head(docId), updateTime: new Timestamp(seconds, 0) });
    reader.noteClaimed(at('a', 1));
    reader.offer([at('a', 1), at('b', 1)], true, true);
    expect(reader.takeBuffered().map((t) => t.docId)).toEqual(['b']);
    reader.offer([at('a', 2)], true, true); // released or retried since: pending again, claimable
    expect(reader.takeBuffered().map((t) => t.docId)).toEqual(['a']);
  });

  it('calls a round that took a complete window of the listener a trickle however long its tasks waited', () => {
    const reader = new QueueReader(store, {} as LeaseProtocol, 'job', capturingLogger(), Date.now);
    reader.offer([head('old', 5000)], true, true);
    reader.takeBuffered();
    expect(reader.lastTakeWasFreshHandOvers(Date.now())).toBe(true);
    reader.offer([head('old2', 1500)], true, false); // a full window: fresh for 2 s
    reader.takeBuffered();
    expect(reader.lastTakeWasFreshHandOvers(Date.now())).toBe(true);
    reader.offer([head('old3', 5000)], true, false);
    reader.takeBuffered();
    expect(reader.lastTakeWasFreshHandOvers(Date.now())).toBe(false);
  });
});

describe('QueueReader read-ahead', () => {
  /** A store whose due-task query answers full pages of fresh tasks and records how it was asked. */
  function pagingStore() {
    const asked: { limit: number; after: unknown }[] = [];
    let n = 0;
    const fake = {
      env: 'stub',
      shards: new Shards(1, 'stub'),
      findClaimable: async (_kind: string, statuses: readonly string[], _now: Date, limit: number, options: { after?: unknown } = {}) => {
        if (!statuses.includes('pending')) return { tasks: [], malformed: [], next: null };
        asked.push({ limit, after: options.after });
        const tasks = Array.from({ length: limit }, () => head(`t${n++}`));
        return { tasks, malformed: [], next: { cursor: n } };
      },
    };
    return { store: fake as unknown as TaskStore, asked };
  }

  it('reads the page after a full one while it is claimed, then the head again', async () => {
    const { store: paging, asked } = pagingStore();
    const reader = new QueueReader(paging, {} as LeaseProtocol, 'job', capturingLogger(), Date.now);
    const first = await reader.nextPage(16, undefined);
    expect(asked).toHaveLength(1);
    reader.readAhead(16, first.next!);
    expect(asked).toHaveLength(2); // asked at once, in the background
    expect(asked[1]!.after).toBe(first.next);
    const second = await reader.nextPage(16, undefined);
    expect(asked).toHaveLength(2); // the page read ahead, no new query
    expect(second.tasks[0]!.docId).toBe(`t${first.tasks.length}`);
    reader.readAhead(16, second.next!); // not after a page that was itself read ahead
    expect(asked).toHaveLength(2);
    await reader.nextPage(16, undefined);
    expect(asked).toHaveLength(3);
    expect(asked[2]!.after).toBeUndefined(); // from the head
  });
});
