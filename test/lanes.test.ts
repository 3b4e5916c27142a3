/**
 * Lanes of a queue (src/worker/lanes.ts): disjoint parts that worker processes sharing a queue
 * read apart, and how one worker moves between them.
 */
import { describe, expect, it } from 'vitest';
import { Shards } from '../src/store/shards.js';
import type { VersionedTask } from '../src/store/task-store.js';
import { Lanes, LaneSpread } from '../src/worker/lanes.js';

const task = (docId: string, shard: number | null = null): VersionedTask => ({ docId, task: { shard } }) as unknown as VersionedTask;

describe('Lanes', () => {
  it('split an unsharded queue by document ID: every hashed ID is in exactly one range, its own lane', () => {
    const lanes = new Lanes(new Shards(1, 'env'));
    expect(lanes.count).toBe(16);
    for (const digit of '0123456789abcdef') {
      const id = `${digit}3f2a9c01b7e_order-7`;
      const holding = lanes.all().filter((lane) => {
        const f = lanes.filter(lane);
        return 'idRange' in f && id >= f.idRange.from && id < f.idRange.to;
      });
      expect(holding).toEqual([lanes.of(task(id))]);
    }
    // An ID the library did not make is in no lane (the whole-queue look still finds it).
    expect(lanes.of(task('legacy-id'))).toBeNull();
  });

  it('are the shards of a sharded queue', () => {
    const lanes = new Lanes(new Shards(8, 'env'));
    expect(lanes.count).toBe(8);
    expect(lanes.filter(3)).toEqual({ shard: 3 });
    expect(lanes.of(task('x', 5))).toBe(5);
  });
});

describe('LaneSpread', () => {
  it('reads the whole unsharded queue until another worker wins most of a page, then takes a lane', () => {
    const spread = new LaneSpread(new Lanes(new Shards(1, 'env')));
    expect(spread.filter()).toBeNull();
    spread.onPageClaims(16, 0);
    expect(spread.lane).toBeNull(); // alone on the queue: stays on the whole of it
    spread.onPageClaims(3, 13);
    expect(spread.lane).not.toBeNull();
    expect(spread.probing).toBe(true);
  });

  it('leaves a lane where a probe loses a claim, and avoids lanes found contested or empty lately', () => {
    const spread = new LaneSpread(new Lanes(new Shards(4, 'env')));
    const seen = new Set<number>();
    for (let i = 0; i < 3; i++) {
      seen.add(spread.lane!);
      spread.onPageClaims(7, 1); // a probe that lost one claim: another worker is there
    }
    // Three contested lanes, then the fourth (the only calm one) is where it settles.
    seen.add(spread.lane!);
    expect(seen.size).toBe(4);
    spread.onPageClaims(8, 0);
    expect(spread.probing).toBe(false);
  });

  it('after its lane ran dry, moves to a lane the look at the rest of the queue found work in', () => {
    const spread = new LaneSpread(new Lanes(new Shards(8, 'env')));
    const from = spread.lane!;
    const to = (from + 3) % 8;
    spread.markDry();
    spread.moveAmong([task('a', to), task('b', to)]);
    expect(spread.lane).toBe(to);
    expect(spread.probing).toBe(true);
  });
});
