/**
 * How a worker counts its slots (src/worker/local-runs.ts): a handler's slot is free once it
 * returns, while its outcome is written; at most `concurrency` such outcomes go uncounted, so
 * a process holds at most 2 × `concurrency` tasks however slow its outcome writes are.
 */
import { describe, expect, it } from 'vitest';
import type { Lease } from '../src/lease/lease.js';
import type { TaskStore } from '../src/store/task-store.js';
import { LocalRuns, type ActiveRun } from '../src/worker/local-runs.js';

const run = (): ActiveRun => ({ lease: { tasks: [] } as unknown as Lease, controller: new AbortController(), done: Promise.resolve() });

describe('LocalRuns slots', () => {
  it('frees a slot when its handler returns, and holds at most twice the concurrency while outcomes are written', () => {
    const concurrency = 2;
    const runs = new LocalRuns({} as Pick<TaskStore, 'readDoc'>);
    let next = 0;
    /** Claims as many runs as the slots allow, as the worker loop does. */
    const fill = (): string[] => {
      const added: string[] = [];
      while (concurrency - runs.slotsInUse(concurrency) > 0) {
        const token = `t${next++}`;
        runs.add(token, run());
        added.push(token);
      }
      return added;
    };
    const first = fill();
    expect(first).toHaveLength(2);
    for (const token of first) runs.handlerReturned(token); // outcomes being written, not answered
    const second = fill();
    expect(second).toHaveLength(2); // their slots were free
    for (const token of second) runs.handlerReturned(token);
    expect(fill()).toHaveLength(0); // four held, none answered: no more claims
    expect(runs.size).toBe(2 * concurrency);
    runs.delete(first[0]!); // an outcome's answer came
    expect(fill()).toHaveLength(1);
    expect(runs.size).toBe(2 * concurrency);
  });

  it('ignores a return reported for a run it does not hold', () => {
    const runs = new LocalRuns({} as Pick<TaskStore, 'readDoc'>);
    runs.add('a', run());
    runs.handlerReturned('gone');
    expect(runs.slotsInUse(1)).toBe(1);
  });
});
