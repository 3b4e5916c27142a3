/**
 * Capacity model of one oncetask deployment on Firestore: how many tasks per second a tasks
 * collection sustains with N timestamp shards, how the 500/50/5 ramp admits new traffic, and
 * how large a backlog builds when the offered load runs above either. Pure and deterministic:
 * nothing runs at import; `npx tsx bench/capacity.ts` prints the tables (see docs/capacity.md).
 *
 * Sources (as named in shared/reference/firestore-facts.md): Firestore best practices (~500
 * writes/s for a collection with an indexed, steadily increasing field; the 500/50/5 ramp) and
 * the "sharded timestamps" solution page (a shard field leading every composite index lifts
 * the ceiling to ~500×N).
 */
import { pathToFileURL } from 'node:url';

/** Parameters of the capacity model. All rates are per second. */
export interface CapacityModel {
  /** Writes to the tasks collection per task (create + claim + outcome = 3 for a no-op task). */
  writesPerTask: number;
  /** Document reads per task (read once in a page of the queue query). */
  readsPerTask: number;
  /** Sustained writes/s one shard of the collection takes: ~500 with indexed monotonic fields. */
  perShardWritesPerSec: number;
  /** Number of timestamp shards (1 = today's unsharded collection). */
  shards: number;
  /** Operations/s a new collection admits at first (500 under 500/50/5). */
  rampStartOpsPerSec: number;
  /** Factor by which admitted traffic may grow per step (1.5 = +50%). */
  rampGrowth: number;
  /** Length of one ramp step in seconds (300 = 5 minutes). */
  rampStepSec: number;
}

/**
 * Writes one task makes on the tasks collection (`onceTasks`), read from src/lease/protocol.ts.
 * Every one of them moves an indexed, steadily increasing value (`createdAt`/`seq` on create,
 * `waitUntil` on claim, renewal and outcome), so each counts against the ~500 writes/s ceiling.
 *
 * - create 1, claim 1, outcome 1: 3 for a no-op task.
 * - each lease renewal of a long task adds 1 (every `leaseMs / 3` while its handler runs).
 * - each failed attempt that is retried adds a claim and an outcome (2).
 * - `retentionMs: 0` changes nothing here: the outcome commit deletes the document instead of
 *   updating it, still one write; with a retention > 0 the TTL policy deletes it later, billed
 *   as a delete but outside the claim path.
 * - a resource-key task also writes its key-lock document twice (claim + release, each in the
 *   same commit as the task write); those go to the separate `onceTasks_keys` collection,
 *   whose documents are per key: created at a key's first claim, updated after that.
 */
export const TASK_WRITES = {
  create: 1,
  claim: 1,
  outcome: 1,
  /** create + claim + outcome. */
  total: 3,
  /** Added per lease renewal. */
  perRenewal: 1,
  /** Added per retried attempt (its claim and outcome). */
  perRetry: 2,
  /** Writes to `onceTasks_keys` per claim of a resource key (claim + release); not on `onceTasks`. */
  keyLockPerClaim: 2,
} as const;

/** Document reads per task: it is read once, in a page of the queue query. */
export const TASK_READS = 1;

/** Billed operations per no-op task: 3 writes + 1 read (what `npm run bench` measures as opsPerTask). */
export const BILLED_OPS_PER_TASK = TASK_WRITES.total + TASK_READS;

/** Shape of one task's work, for {@link taskWrites}. */
export interface TaskProfile {
  /** Lease renewals while its handler runs (`floor(runMs / (leaseMs / 3))`). Default 0. */
  renewals?: number;
  /** Retried attempts before the final one. Default 0. */
  retries?: number;
  /** Has a resource key. Default false. */
  keyed?: boolean;
  /** Tasks claimed together by a grouped handler (`handleGroup`); implies a key lock. Default 1. */
  groupSize?: number;
}

/**
 * Writes per task on the tasks collection and on the key-lock collection. A group of k tasks
 * shares one claim commit and one lock (k task writes + 1 lock write), so lock writes are spread
 * over the group; a renewal of a group writes each live task and the lock.
 */
export function taskWrites(profile: TaskProfile = {}): { tasks: number; locks: number } {
  const renewals = profile.renewals ?? 0;
  const retries = profile.retries ?? 0;
  const groupSize = profile.groupSize ?? 1;
  const keyed = (profile.keyed ?? false) || groupSize > 1;
  const attempts = 1 + retries;
  const tasks = TASK_WRITES.total + retries * TASK_WRITES.perRetry + renewals * TASK_WRITES.perRenewal;
  const locks = keyed ? (attempts * TASK_WRITES.keyLockPerClaim + renewals) / groupSize : 0;
  return { tasks, locks };
}

/** The production figures: 3 writes + 1 read per task, 500 writes/s per shard, 500/50/5. */
export const DEFAULT_MODEL: CapacityModel = {
  writesPerTask: TASK_WRITES.total,
  readsPerTask: TASK_READS,
  perShardWritesPerSec: 500,
  shards: 1,
  rampStartOpsPerSec: 500,
  rampGrowth: 1.5,
  rampStepSec: 300,
};

/** Billed operations per task (what the ramp counts). */
export function opsPerTask(model: CapacityModel): number {
  return model.writesPerTask + model.readsPerTask;
}

/**
 * Steady-state tasks/s ceiling: the sharded write ceiling divided by writes per task. Reads do
 * not enter it: the documented hotspot is index writes on a monotonic field, and nothing else
 * in the model bounds steady state (the ramp is a bound in time, see {@link rampOpsCeiling}).
 */
export function ceilingTasksPerSec(model: CapacityModel): number {
  return (model.perShardWritesPerSec * model.shards) / model.writesPerTask;
}

/** Operations/s the database admits `tSec` seconds after new traffic started (500/50/5). */
export function rampOpsCeiling(model: CapacityModel, tSec: number): number {
  return model.rampStartOpsPerSec * model.rampGrowth ** Math.floor(tSec / model.rampStepSec);
}

/** First second at which the ramp admits `opsPerSec` (a multiple of the ramp step). */
export function rampSecondsUntil(model: CapacityModel, opsPerSec: number): number {
  if (opsPerSec <= model.rampStartOpsPerSec) return 0;
  // Counting steps instead of taking a logarithm keeps the result exact at step boundaries.
  let steps = 0;
  while (rampOpsCeiling(model, steps * model.rampStepSec) < opsPerSec) steps += 1;
  return steps * model.rampStepSec;
}

/** Tasks/s the database can process at `tSec`: the lower of the shard and ramp ceilings. */
export function capacityAt(model: CapacityModel, tSec: number): number {
  return Math.min(ceilingTasksPerSec(model), rampOpsCeiling(model, tSec) / opsPerTask(model));
}

/** Offered load: tasks/s arriving at second `tSec`. */
export type Load = (tSec: number) => number;

/**
 * One sample of a simulation: the rates of the 1 s tick starting at `t`, and the backlog at
 * the end of that tick.
 */
export interface Sample {
  t: number;
  offered: number;
  capacity: number;
  processed: number;
  backlog: number;
}

/** What a simulation shows overall. */
export interface SimulationSummary {
  /** Largest backlog (tasks) at the end of any tick. */
  maxBacklog: number;
  /** Backlog when the simulation ends. */
  finalBacklog: number;
  /** When (s from start) the backlog last fell back to 0; 0 if it never built; null if still there at the end. */
  drainedAtSec: number | null;
  /** Highest offered load (tasks/s) of any tick. */
  maxOffered: number;
}

/** Result of {@link simulate}. */
export interface Simulation {
  samples: Sample[];
  summary: SimulationSummary;
}

/**
 * Steps a single queue through `durationSec` ticks of 1 s. Each tick the database processes
 * what is due (backlog + newly offered) up to its capacity; the rest carries over. The rates are
 * fluid (fractional tasks), which is exact enough for a model of thousands per second.
 */
export function simulate(model: CapacityModel, load: Load, durationSec: number, opts: { sampleEverySec?: number } = {}): Simulation {
  const every = opts.sampleEverySec ?? 60;
  const samples: Sample[] = [];
  let backlog = 0;
  let maxBacklog = 0;
  let maxOffered = 0;
  let lastPositiveEnd: number | null = null;
  for (let t = 0; t < durationSec; t++) {
    const offered = load(t);
    const capacity = capacityAt(model, t);
    const due = backlog + offered;
    const processed = Math.min(capacity, due);
    // due − min(capacity, due) is exactly 0 when everything due fits, so "drained" needs no epsilon.
    backlog = due - processed;
    maxBacklog = Math.max(maxBacklog, backlog);
    maxOffered = Math.max(maxOffered, offered);
    if (backlog > 0) lastPositiveEnd = t + 1;
    if (t % every === 0 || t === durationSec - 1) samples.push({ t, offered, capacity, processed, backlog });
  }
  const drainedAtSec = backlog > 0 ? null : lastPositiveEnd === null ? 0 : lastPositiveEnd + 1;
  return { samples, summary: { maxBacklog, finalBacklog: backlog, drainedAtSec, maxOffered } };
}

/** The rule {@link shardsNeeded} applies. */
export interface ShardRule {
  /** Largest N tried. Default 64. */
  maxShards?: number;
  /** Backlog (tasks) allowed at the end. Default 1: the load must be kept up with, bar rounding. */
  maxFinalBacklog?: number;
  /** Peak backlog allowed, in seconds of the peak offered load. Default 60. */
  maxPeakBacklogSec?: number;
}

/** Whether a simulation meets the rule: final backlog within bound and peak backlog within bound. */
export function meetsRule(summary: SimulationSummary, rule: ShardRule = {}): boolean {
  const maxFinal = rule.maxFinalBacklog ?? 1;
  const maxPeak = (rule.maxPeakBacklogSec ?? 60) * summary.maxOffered;
  return summary.finalBacklog <= maxFinal && summary.maxBacklog <= maxPeak;
}

/**
 * Smallest shard count N in 1..maxShards for which the load is kept up with: the backlog at the
 * end is at most `maxFinalBacklog` (1 task) and the peak backlog stays within `maxPeakBacklogSec`
 * (60) seconds of the peak offered load — a burst may queue briefly, a sustained overload may
 * not. More shards never lower capacity, so backlog only falls as N grows and the first N
 * that passes is the answer. Null when even maxShards does not.
 */
export function shardsNeeded(model: CapacityModel, load: Load, durationSec: number, rule: ShardRule = {}): number | null {
  const maxShards = rule.maxShards ?? 64;
  for (let shards = 1; shards <= maxShards; shards++) {
    if (meetsRule(simulate({ ...model, shards }, load, durationSec).summary, rule)) return shards;
  }
  return null;
}

/** A load scenario to size shards for. */
export interface Scenario {
  /** The model (its `shards` is ignored by {@link shardsNeeded}). */
  model: CapacityModel;
  /** Load held at the end (tasks/s). */
  targetTasksPerSec: number;
  /** How long the target is held once reached (s). */
  holdSec: number;
  /** When the ramp first admits the target (s from start). */
  reachesTargetSec: number;
  /** Ramp time + hold time. */
  durationSec: number;
  /** Offered tasks/s over time. */
  load: Load;
}

/**
 * Traffic that grows only as fast as the 500/50/5 ramp admits (its ops/s divided by ops per
 * task) until it reaches `targetTasksPerSec`, then holds the target for `holdSec`.
 */
export function rampedScenario(model: CapacityModel, targetTasksPerSec: number, holdSec: number): Scenario {
  const reachesTargetSec = rampSecondsUntil(model, targetTasksPerSec * opsPerTask(model));
  const load: Load = (t) => Math.min(targetTasksPerSec, rampOpsCeiling(model, t) / opsPerTask(model));
  return { model, targetTasksPerSec, holdSec, reachesTargetSec, durationSec: reachesTargetSec + holdSec, load };
}

/** Production-like default: ramped up to 2,000 tasks/s (reached after 35 min), held 10 min. */
export const DEFAULT_SCENARIO: Scenario = rampedScenario(DEFAULT_MODEL, 2000, 600);

/** Figures of {@link runCapacityPhase}, one JSON line's worth. */
export interface CapacityPhaseResult {
  verdict: string;
  /** Null when even 64 shards do not keep up. */
  shardsNeeded: number | null;
  targetTasksPerSec: number;
  holdSec: number;
  writesPerTask: number;
  opsPerTask: number;
  perShardTasksPerSec: number;
  rampReachesTargetSec: number;
  /** Peak backlog (tasks) with half the needed shards: what under-sharding costs. */
  halfShardsMaxBacklog: number | null;
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

/** The "X tasks/s for Y min needs N shards" line. */
function verdictLine(scenario: Scenario, needed: number | null): string {
  const perShard = Math.floor(ceilingTasksPerSec({ ...scenario.model, shards: 1 }));
  const what = `${scenario.targetTasksPerSec} tasks/s for ${round(scenario.holdSec / 60)} min`;
  const ramp = `the 500/50/5 ramp admits it after ${round(scenario.reachesTargetSec / 60)} min`;
  const shards = needed === null ? 'needs more than 64 shards' : `needs ${needed} shard${needed === 1 ? '' : 's'}`;
  return `${what} ${shards} (ceiling ${perShard} tasks/s per shard; ${ramp})`;
}

/** Sizes the scenario (default {@link DEFAULT_SCENARIO}): the verdict line and its figures. */
export function runCapacityPhase(scenario: Scenario = DEFAULT_SCENARIO): CapacityPhaseResult {
  const { model } = scenario;
  const needed = shardsNeeded(model, scenario.load, scenario.durationSec);
  const half = needed === null ? null : Math.max(1, Math.floor(needed / 2));
  const halfSim = half === null ? null : simulate({ ...model, shards: half }, scenario.load, scenario.durationSec);
  return {
    verdict: verdictLine(scenario, needed),
    shardsNeeded: needed,
    targetTasksPerSec: scenario.targetTasksPerSec,
    holdSec: scenario.holdSec,
    writesPerTask: model.writesPerTask,
    opsPerTask: opsPerTask(model),
    perShardTasksPerSec: round(ceilingTasksPerSec({ ...model, shards: 1 }), 2),
    rampReachesTargetSec: scenario.reachesTargetSec,
    halfShardsMaxBacklog: halfSim === null ? null : Math.round(halfSim.summary.maxBacklog),
  };
}

// ---- command line ---------------------------------------------------------------------------

const TABLE_SHARDS = [1, 2, 4, 8, 12, 16, 24, 32];

function printCeilings(model: CapacityModel): void {
  console.log('shards  writes/s  tasks/s');
  for (const shards of TABLE_SHARDS) {
    const m = { ...model, shards };
    console.log(`${String(shards).padStart(6)}  ${String(m.perShardWritesPerSec * shards).padStart(8)}  ${ceilingTasksPerSec(m).toFixed(1).padStart(7)}`);
  }
}

/** Backlog over time for the needed N and for N/2, side by side (one row per sample). */
function printBacklogs(scenario: Scenario, needed: number): void {
  const half = Math.max(1, Math.floor(needed / 2));
  const a = simulate({ ...scenario.model, shards: needed }, scenario.load, scenario.durationSec);
  const b = simulate({ ...scenario.model, shards: half }, scenario.load, scenario.durationSec);
  const num = (x: number, w: number): string => Math.round(x).toString().padStart(w);
  console.log(`\n  t(s)  offered | N=${needed}: capacity  backlog | N=${half}: capacity  backlog`);
  a.samples.forEach((s, i) => {
    const h = b.samples[i]!;
    console.log(`${num(s.t, 6)}  ${num(s.offered, 7)} | ${num(s.capacity, 14)} ${num(s.backlog, 8)} | ${num(h.capacity, 13)} ${num(h.backlog, 8)}`);
  });
  const drained = (d: number | null): string => (d === null ? 'not drained by the end' : d === 0 ? 'never builds' : `drained at ${d} s`);
  console.log(`N=${needed}: max backlog ${num(a.summary.maxBacklog, 0)}, ${drained(a.summary.drainedAtSec)}; ` +
    `N=${half}: max backlog ${num(b.summary.maxBacklog, 0)}, ${drained(b.summary.drainedAtSec)}`);
}

function main(): void {
  const scenario = DEFAULT_SCENARIO;
  printCeilings(scenario.model);
  const result = runCapacityPhase(scenario);
  if (result.shardsNeeded !== null) printBacklogs(scenario, result.shardsNeeded);
  console.log(`\n${result.verdict}`);
  console.log(JSON.stringify(result));
}

const invoked = process.argv[1];
if (invoked !== undefined && import.meta.url === pathToFileURL(invoked).href) main();
