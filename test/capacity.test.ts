import { describe, expect, it } from 'vitest';
import {
  BILLED_OPS_PER_TASK,
  DEFAULT_MODEL,
  DEFAULT_SCENARIO,
  TASK_WRITES,
  ceilingTasksPerSec,
  meetsRule,
  rampOpsCeiling,
  rampSecondsUntil,
  runCapacityPhase,
  shardsNeeded,
  simulate,
  taskWrites,
  type CapacityModel,
} from '../bench/capacity.js';

/** The default model with N shards and the ramp out of the way, to look at the shard ceiling alone. */
const unramped = (shards: number): CapacityModel => ({ ...DEFAULT_MODEL, shards, rampStartOpsPerSec: Number.POSITIVE_INFINITY });

describe('per-task writes', () => {
  it('counts 3 writes and 4 billed operations for a no-op task', () => {
    expect(TASK_WRITES.total).toBe(TASK_WRITES.create + TASK_WRITES.claim + TASK_WRITES.outcome);
    expect(BILLED_OPS_PER_TASK).toBe(4);
    expect(taskWrites()).toEqual({ tasks: 3, locks: 0 });
  });

  it('adds one task write per renewal, and spreads a group\'s lock writes over its tasks', () => {
    expect(taskWrites({ renewals: 5 }).tasks).toBe(8);
    expect(taskWrites({ keyed: true })).toEqual({ tasks: 3, locks: 2 });
    expect(taskWrites({ groupSize: 10 })).toEqual({ tasks: 3, locks: 0.2 });
  });
});

describe('ceilingTasksPerSec', () => {
  it('scales linearly with the number of shards', () => {
    const one = ceilingTasksPerSec({ ...DEFAULT_MODEL, shards: 1 });
    expect(one).toBeCloseTo(500 / 3, 10);
    for (const n of [2, 4, 8, 12, 16, 32]) expect(ceilingTasksPerSec({ ...DEFAULT_MODEL, shards: n })).toBeCloseTo(n * one, 9);
    expect(ceilingTasksPerSec({ ...DEFAULT_MODEL, shards: 12 })).toBe(2000);
  });
});

describe('rampOpsCeiling', () => {
  it('follows 500/50/5: 500 ops/s at first, +50% after each 5 minutes', () => {
    expect(rampOpsCeiling(DEFAULT_MODEL, 0)).toBe(500);
    expect(rampOpsCeiling(DEFAULT_MODEL, 299)).toBe(500);
    expect(rampOpsCeiling(DEFAULT_MODEL, 300)).toBe(750);
    expect(rampOpsCeiling(DEFAULT_MODEL, 600)).toBe(1125);
  });

  it('admits 2,000 tasks/s (8,000 ops/s) after 35 minutes', () => {
    expect(rampSecondsUntil(DEFAULT_MODEL, 8000)).toBe(2100);
    expect(rampOpsCeiling(DEFAULT_MODEL, 2099)).toBeLessThan(8000);
  });
});

describe('simulate', () => {
  it('builds no backlog from a load under capacity', () => {
    // Under the ramp too: 120 tasks/s is below 500 ops/s / 4 = 125 tasks/s at t = 0.
    const { samples, summary } = simulate({ ...DEFAULT_MODEL, shards: 1 }, () => 120, 900);
    expect(summary.maxBacklog).toBe(0);
    expect(summary.finalBacklog).toBe(0);
    expect(summary.drainedAtSec).toBe(0);
    for (const s of samples) expect(s.processed).toBe(120);
  });

  it('builds a backlog growing at (offered − capacity) per second from a load over capacity', () => {
    const model = unramped(1);
    const capacity = ceilingTasksPerSec(model);
    const { samples, summary } = simulate(model, () => 300, 600);
    const at = (t: number): number => samples.find((s) => s.t === t)!.backlog;
    expect(at(120) - at(60)).toBeCloseTo(60 * (300 - capacity), 6);
    expect(at(540) - at(0)).toBeCloseTo(540 * (300 - capacity), 6);
    expect(summary.finalBacklog).toBeCloseTo(600 * (300 - capacity), 6);
    expect(summary.drainedAtSec).toBeNull();
  });

  it('lets the ramp bind before the shard ceiling does', () => {
    // 32 shards take 5,333 tasks/s, but a new collection admits only 125 tasks/s at first.
    const { samples } = simulate({ ...DEFAULT_MODEL, shards: 32 }, () => 200, 300);
    expect(samples[0]!.capacity).toBe(125);
    expect(samples.at(-1)!.backlog).toBeCloseTo(300 * 75, 6);
  });

  it('reports when a burst has drained', () => {
    const model = unramped(1);
    const capacity = ceilingTasksPerSec(model);
    // 10 s at capacity + 70, then idle: 700 tasks queued, drained at capacity/s (4.2 s).
    const { summary } = simulate(model, (t) => (t < 10 ? capacity + 70 : 0), 60);
    expect(summary.maxBacklog).toBeCloseTo(700, 6);
    expect(summary.finalBacklog).toBe(0);
    expect(summary.drainedAtSec).toBe(10 + Math.ceil(700 / capacity));
  });
});

describe('shardsNeeded', () => {
  const { model, load, durationSec } = DEFAULT_SCENARIO;
  const run = (shards: number) => simulate({ ...model, shards }, load, durationSec).summary;

  it('ramps the default scenario to 2,000 tasks/s in 35 min and holds it for 10', () => {
    expect(DEFAULT_SCENARIO.reachesTargetSec).toBe(2100);
    expect(DEFAULT_SCENARIO.durationSec).toBe(2700);
    expect(load(0)).toBe(125);
    expect(load(2099)).toBeLessThan(2000);
    expect(load(2100)).toBe(2000);
  });

  it('is the smallest N that meets the rule for the default scenario (N passes, N − 1 fails)', () => {
    const n = shardsNeeded(model, load, durationSec);
    expect(n).toBe(12);
    expect(meetsRule(run(n!))).toBe(true);
    expect(meetsRule(run(n! - 1))).toBe(false);
    // N − 1 keeps a growing backlog: 2,000 − 1,833.3 tasks/s over the 10 min hold.
    expect(run(n! - 1).finalBacklog).toBeCloseTo(600 * (2000 - ceilingTasksPerSec({ ...model, shards: n! - 1 })), 3);
  });

  it('returns null when even the largest N tried does not keep up', () => {
    expect(shardsNeeded(model, () => 10_000, 600, { maxShards: 4 })).toBeNull();
  });

  it('gives the verdict line with the figures', () => {
    const result = runCapacityPhase();
    expect(result.shardsNeeded).toBe(12);
    expect(result.verdict).toMatch(/^2000 tasks\/s for 10 min needs 12 shards \(ceiling 166 tasks\/s per shard/);
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });
});
