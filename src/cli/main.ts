#!/usr/bin/env node
/**
 * The `oncetask` command: inspect and steer tasks from a terminal, against the emulator
 * (`FIRESTORE_EMULATOR_HOST`) or a project with Application Default Credentials. Every command
 * takes `--project`, `--env`, `--collection` and `--json`; destructive ones confirm unless
 * `--yes`. Bad arguments exit 2, a failed command 1, and `doctor` 1 when it finds anything.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { Command, CommanderError, Option } from 'commander';
import { OnceTaskError, TaskNotFoundError } from '../errors.js';
import { TASK_STATUSES, type TaskInfo, type TaskStatus } from '../task-document.js';
import { connect, kindByName, pages, type GlobalOptions } from './connect.js';
import { checkData, checkIndexes, checkRules, type Finding } from './doctor.js';
import { parseDuration } from './duration.js';

/** A usage error: exit 2. */
class UsageError extends Error {}

const out = (text: string): void => void process.stdout.write(`${text}\n`);
const print = (options: GlobalOptions, value: unknown, human: () => string): void => out(options.json ? JSON.stringify(value, null, 2) : human());
const line = (t: TaskInfo): string => `${t.id}  ${t.kind}  ${t.status}  attempts ${t.attempts}  due ${t.waitUntil.toISOString()}${t.resourceKey ? `  key ${t.resourceKey}` : ''}`;

/** Asks before a destructive command, unless `--yes`; refuses without a terminal to ask on. */
async function confirm(options: GlobalOptions, what: string): Promise<void> {
  if (options.yes) return;
  if (!process.stdin.isTTY) throw new UsageError(`${what}: pass --yes to confirm (no terminal to ask on)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${what}. Continue? [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new UsageError('cancelled');
}

/** Runs a command body with a connected manager, closing it afterwards. */
function withManager<A extends unknown[]>(program: Command, body: (m: ReturnType<typeof connect>['manager'], options: GlobalOptions, ...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    const options = program.opts<GlobalOptions>();
    const connection = connect(options);
    try {
      process.exitCode = (await body(connection.manager, options, ...args)) ?? 0;
    } finally {
      await connection.close();
    }
  };
}

const status = (value: string): TaskStatus => {
  if (!TASK_STATUSES.includes(value as TaskStatus)) throw new UsageError(`status must be one of ${TASK_STATUSES.join(', ')}`);
  return value as TaskStatus;
};
/** Collects repeated `--label key=value` options into one object (a key given twice: the last wins). */
const collectLabel = (value: string, previous: Record<string, string> = {}): Record<string, string> => {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw new UsageError(`--label takes key=value (got ${JSON.stringify(value)})`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
};
const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`not a positive integer: ${value}`);
  return n;
};

/** A command `<verb> <ids...>` that confirms, runs `run` and prints how many tasks it changed (`{ reset: n }`, `{ deleted: n }`). */
function destructiveIdCommand(program: Command, verb: 'reset' | 'delete', description: string, run: (m: ReturnType<typeof connect>['manager'], ids: string[]) => Promise<number>): void {
  const done = verb === 'reset' ? 'reset' : 'deleted';
  program
    .command(`${verb} <ids...>`)
    .description(description)
    .action(
      withManager(program, async (m, options, ids: string[]) => {
        await confirm(options, `${verb} ${ids.length} task(s)`);
        const count = await run(m, ids);
        print(options, { [done]: count }, () => `${done} ${count}`);
      }),
    );
}

export function buildProgram(): Command {
  const program = new Command('oncetask')
    .description('Inspect and steer oncetask tasks in Firestore (the emulator when FIRESTORE_EMULATOR_HOST is set).')
    .option('--project <id>', 'Google Cloud project (default: from the environment / Application Default Credentials)')
    .option('--env <env>', 'task environment (default: ONCE_TASK_ENV, else "default")')
    .option('--collection <name>', 'task collection', 'onceTasks')
    .option('--json', 'print JSON')
    .option('-y, --yes', 'do not ask before destructive commands')
    .showHelpAfterError('(oncetask --help shows the commands and options)')
    .exitOverride();

  program
    .command('list')
    .description('list tasks, newest first (with --key: one resource key\'s tasks in queue order)')
    .option('--kind <kind>', 'only this kind')
    .addOption(new Option('--status <status>', 'only this status').choices([...TASK_STATUSES]))
    .option('--key <resourceKey>', 'only this resource key (needs --kind)')
    .option('--label <key=value>', 'only tasks with this label; repeat for more (all must match; the first is the indexed one)', collectLabel)
    .option('--limit <n>', 'page size', positiveInt, 20)
    .option('--cursor <cursor>', 'next page (the cursor a previous page printed)')
    .action(
      withManager(program, async (m, options, cmd: { kind?: string; status?: string; key?: string; label?: Record<string, string>; limit: number; cursor?: string }) => {
        const labels = cmd.label;
        if (cmd.key !== undefined) {
          if (cmd.kind === undefined) throw new UsageError('--key needs --kind');
          const tasks = (await m.listByResourceKey(kindByName(cmd.kind), cmd.key, { limit: cmd.limit }))
            .filter((t) => cmd.status === undefined || t.status === cmd.status)
            .filter((t) => labels === undefined || Object.entries(labels).every(([k, v]) => t.labels[k] === v));
          print(options, { tasks }, () => tasks.map(line).join('\n') || '(none)');
          return;
        }
        const page = await m.list({ limit: cmd.limit, ...(cmd.kind ? { kind: cmd.kind } : {}), ...(cmd.status ? { status: status(cmd.status) } : {}), ...(labels ? { labels } : {}), ...(cmd.cursor ? { cursor: cmd.cursor } : {}) });
        print(options, page, () => [page.tasks.map(line).join('\n') || '(none)', page.nextCursor ? `next page: --cursor ${page.nextCursor}` : ''].filter(Boolean).join('\n'));
      }),
    );

  program
    .command('show <id>')
    .description('every field of a task: errors with stacks, lease, recurrence or occurrence')
    .action(
      withManager(program, async (m, options, id: string) => {
        const task = await m.get(id);
        if (task === null) throw new TaskNotFoundError(id, m.env);
        print(options, task, () => JSON.stringify(task, null, 2));
      }),
    );

  program
    .command('stats')
    .description('counts per status (all kinds, and per --kind: due now, scheduled, oldest due age), failures in the last hour')
    .option('--kind <kind...>', 'kinds to break down')
    .action(
      withManager(program, async (m, options, cmd: { kind?: string[] }) => {
        const now = Date.now();
        const all = await m.countByStatus();
        const kinds = await Promise.all((cmd.kind ?? []).map(async (kind) => ({ kind, counts: await m.countByStatus(kind), depth: await m.queueDepth(kind) })));
        // Failures of the last hour: failed tasks newest first (reads those only).
        let failedLastHour = 0;
        const failed = await m.list({ status: 'failed', limit: 1000 });
        for (const t of failed.tasks) if (t.doneAt !== null && now - t.doneAt.getTime() <= 3_600_000) failedLastHour++;
        const result = { counts: all, kinds: kinds.map((k) => ({ kind: k.kind, counts: k.counts, ...k.depth, oldestDueAgeSeconds: k.depth.oldestDueAt === null ? null : Math.round((now - k.depth.oldestDueAt.getTime()) / 1000) })), failedLastHour };
        print(options, result, () =>
          [
            `all kinds: ${TASK_STATUSES.map((s) => `${s} ${all[s]}`).join(', ')}`,
            ...result.kinds.map((k) => `${k.kind}: ${TASK_STATUSES.map((s) => `${s} ${k.counts[s]}`).join(', ')}; due now ${k.dueNow}, scheduled ${k.scheduled}, oldest due ${k.oldestDueAgeSeconds === null ? '-' : `${k.oldestDueAgeSeconds} s ago`}`),
            `failed in the last hour: ${failedLastHour}`,
          ].join('\n'),
        );
      }),
    );

  program
    .command('retry <ids...>')
    .description('run pending or failed tasks again now')
    .action(
      withManager(program, async (m, options, ids: string[]) => {
        for (const id of ids) await m.retryNow(id);
        print(options, { retried: ids }, () => `retried ${ids.length}`);
      }),
    );

  destructiveIdCommand(program, 'reset', 'set tasks back to pending with their attempts cleared (any status)', (m, ids) => m.reset(ids));

  program
    .command('cancel [ids...]')
    .description('cancel tasks by ID, or every open task of a resource key (--kind K --key R)')
    .option('--kind <kind>', 'with --key: the kind')
    .option('--key <resourceKey>', 'cancel every open task of this key')
    .action(
      withManager(program, async (m, options, ids: string[], cmd: { kind?: string; key?: string }) => {
        if ((cmd.key === undefined) === (ids.length === 0)) throw new UsageError('pass task IDs, or --kind and --key (not both)');
        if (cmd.key !== undefined && cmd.kind === undefined) throw new UsageError('--key needs --kind');
        await confirm(options, cmd.key !== undefined ? `cancel every open ${cmd.kind} task of key ${cmd.key}` : `cancel ${ids.length} task(s)`);
        const count = cmd.key !== undefined ? await m.cancelByResourceKey(kindByName(cmd.kind!), cmd.key) : await m.cancelMany(ids);
        print(options, { cancelled: count }, () => `cancelled ${count}`);
      }),
    );

  destructiveIdCommand(program, 'delete', 'delete tasks', (m, ids) => m.deleteMany(ids));

  program
    .command('purge')
    .description('delete finished tasks older than a duration (reads the tasks of that status)')
    .requiredOption('--status <status>', 'succeeded, failed or cancelled')
    .requiredOption('--older-than <duration>', 'finished longer ago than this: 90s, 15m, 12h, 7d, 2w')
    .option('--kind <kind>', 'only this kind')
    .action(
      withManager(program, async (m, options, cmd: { status: string; olderThan: string; kind?: string }) => {
        const wanted = status(cmd.status);
        if (!['succeeded', 'failed', 'cancelled'].includes(wanted)) throw new UsageError('purge deletes finished tasks only: --status succeeded, failed or cancelled');
        const cutoff = Date.now() - parseDuration(cmd.olderThan);
        const ids: string[] = [];
        for await (const page of pages(m, { status: wanted, limit: 1000, ...(cmd.kind ? { kind: cmd.kind } : {}) })) {
          for (const t of page.tasks) if ((t.doneAt ?? t.updatedAt).getTime() < cutoff) ids.push(t.id);
        }
        if (ids.length === 0) return print(options, { deleted: 0 }, () => 'nothing to purge');
        await confirm(options, `delete ${ids.length} ${wanted} task(s) finished before ${new Date(cutoff).toISOString()}`);
        let deleted = 0;
        for (let i = 0; i < ids.length; i += 500) deleted += await m.deleteMany(ids.slice(i, i + 500));
        print(options, { deleted }, () => `deleted ${deleted}`);
      }),
    );

  program
    .command('schedules')
    .description('recurring generators by next slot: rule (or cron / every), time zone, next slot, last spawn, paused')
    .option('--kind <kind>', 'only this kind')
    .option('--limit <n>', 'most generators to show (1-1000)', positiveInt, 100)
    .action(
      withManager(program, async (m, options, cmd: { kind?: string; limit: number }) => {
        if (cmd.limit > 1000) throw new UsageError('--limit is at most 1000');
        const schedules = await m.listSchedules({ limit: cmd.limit, ...(cmd.kind ? { kind: cmd.kind } : {}) });
        const shown = schedules.map(({ rule, ...s }) => ({ id: s.id, kind: s.kind, status: s.status, rrule: rule, cron: s.cron, every: s.every, tzid: s.tzid, catchUp: s.catchUp, overlap: s.overlap, nextSlot: s.nextSlot, lastSpawn: s.lastSpawn, paused: s.paused }));
        print(options, { schedules: shown }, () =>
          shown
            .map((g) => {
              const rule = g.cron !== null ? `cron ${g.cron}` : g.every !== null ? `every ${g.every}` : g.rrule;
              const state = g.paused ? '  paused' : g.status === 'pending' ? '' : `  ${g.status}`;
              return `${g.id}  ${g.kind}  ${rule}  ${g.tzid}  next ${g.nextSlot?.toISOString() ?? '-'}${g.lastSpawn ? `  last ${g.lastSpawn.slot.toISOString()}` : ''}${state}`;
            })
            .join('\n') || '(none)',
        );
      }),
    );

  program
    .command('pause')
    .description('stop every worker of a kind (or of all kinds) from claiming, in every process, within about a second')
    .option('--kind <kind>', 'the kind to pause (default: every kind)')
    .option('--for <duration>', 'resume by itself after this long, e.g. 30m')
    .action(
      withManager(program, async (m, options, cmd: { kind?: string; for?: string }) => {
        const until = cmd.for === undefined ? undefined : new Date(Date.now() + parseDuration(cmd.for));
        await m.pause({ ...(cmd.kind ? { kind: cmd.kind } : {}), ...(until ? { until } : {}) });
        print(options, { paused: cmd.kind ?? null, until: until ?? null }, () => `paused ${cmd.kind ?? 'every kind'}${until ? ` until ${until.toISOString()}` : ''}`);
      }),
    );

  program
    .command('resume')
    .description('lift the pause of a kind (default: every pause)')
    .option('--kind <kind>', 'the kind to resume')
    .action(
      withManager(program, async (m, options, cmd: { kind?: string }) => {
        await m.resume(cmd.kind ? { kind: cmd.kind } : {});
        print(options, { resumed: cmd.kind ?? null }, () => `resumed ${cmd.kind ?? 'every kind'}`);
      }),
    );

  program
    .command('paused')
    .description('the pauses in force')
    .action(
      withManager(program, async (m, options) => {
        const pauses = await m.paused();
        print(options, { pauses }, () => pauses.map((p) => `${p.kind ?? '(every kind)'}  since ${p.since.toISOString()}${p.until ? `  until ${p.until.toISOString()}` : ''}`).join('\n') || '(none)');
      }),
    );

  program
    .command('schedule-pause <id>')
    .description('pause a recurring generator: it spawns nothing until schedule-resume')
    .action(
      withManager(program, async (m, options, id: string) => {
        const paused = await m.pauseSchedule(id);
        print(options, { paused }, () => (paused ? `paused ${id}` : `${id} was paused already`));
      }),
    );

  program
    .command('schedule-resume <id>')
    .description('resume a paused generator at its slot (its catchUp decides about the slots it missed)')
    .action(
      withManager(program, async (m, options, id: string) => {
        const resumed = await m.resumeSchedule(id);
        print(options, { resumed }, () => (resumed ? `resumed ${id}` : `${id} was not paused`));
      }),
    );

  program
    .command('schedule-run <id>')
    .description('spawn one extra occurrence of a generator now (the generator does not move)')
    .action(
      withManager(program, async (m, options, id: string) => {
        const run = await m.runScheduleNow(id);
        print(options, run, () => `created ${run.id}`);
      }),
    );

  program
    .command('doctor')
    .description('check a project against what oncetask needs; exits 1 on any finding, with the command that fixes it')
    .option('--indexes <file>', 'the deployed index configuration (firebase firestore:indexes --project P > deployed.json)')
    .option('--rules <file>', 'the deployed security rules')
    .option('--shards <n>', 'the queue is sharded (compare with firestore.indexes.sharded.json)', positiveInt, 1)
    .action(
      withManager(program, async (m, options, cmd: { indexes?: string; rules?: string; shards: number }) => {
        const project = options.project ?? process.env.GCLOUD_PROJECT ?? process.env.GOOGLE_CLOUD_PROJECT ?? '<project>';
        const input = {
          project,
          collection: options.collection ?? 'onceTasks',
          sharded: cmd.shards > 1,
          ...(cmd.indexes ? { deployedIndexes: readFileSync(cmd.indexes, 'utf8') } : {}),
          ...(cmd.rules ? { deployedRules: readFileSync(cmd.rules, 'utf8') } : {}),
        };
        const findings: Finding[] = [...checkIndexes(input), ...checkRules(input), ...(await checkData(m, input))];
        const skipped = [...(cmd.indexes ? [] : ['indexes, TTL and exemptions (pass --indexes)']), ...(cmd.rules ? [] : ['rules (pass --rules)'])];
        print(options, { findings, skipped }, () =>
          [
            ...findings.map((f) => `✗ [${f.check}] ${f.problem}\n    fix: ${f.fix}`),
            ...skipped.map((s) => `- not checked: ${s}`),
            findings.length === 0 ? '✓ no findings' : `${findings.length} finding(s)`,
          ].join('\n'),
        );
        return findings.length === 0 ? 0 : 1;
      }),
    );
  return program;
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // help, version; or a bad argument (commander printed it)
    if (err instanceof UsageError || (err instanceof OnceTaskError && err.code === 'INVALID_OPTIONS')) {
      process.stderr.write(`oncetask: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`oncetask: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
