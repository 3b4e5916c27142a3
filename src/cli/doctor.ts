import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { OnceTaskManager } from '../manager.js';
import { pages } from './connect.js';

/**
 * `oncetask doctor`: checks a project against what the library needs, and says for each finding
 * the command that fixes it. The index and rules checks read files (the deployed configuration,
 * as `firebase firestore:indexes` prints it, and the deployed rules) and compare them with the
 * ones this package ships; the data checks query the project.
 */

/** An index configuration file (`firestore.indexes.json`'s shape). */
interface IndexConfig {
  indexes?: { collectionGroup: string; queryScope?: string; fields: { fieldPath: string; order?: string; arrayConfig?: string }[] }[];
  fieldOverrides?: { collectionGroup: string; fieldPath: string; ttl?: boolean; indexes?: unknown[] }[];
}

/** One problem found, and how to fix it. */
export interface Finding {
  check: string;
  problem: string;
  fix: string;
}

/** What `doctor` was asked to check. */
export interface DoctorInput {
  project: string;
  collection: string;
  /** The deployed index configuration (JSON text), if given. */
  deployedIndexes?: string;
  /** The deployed security rules (text), if given. */
  deployedRules?: string;
  /** Whether the queue is sharded (compare with the sharded index file). */
  sharded: boolean;
}

/** The index file this package ships (for a sharded queue: the sharded one). */
function shippedIndexes(sharded: boolean): IndexConfig {
  const file = sharded ? 'firestore.indexes.sharded.json' : 'firestore.indexes.json';
  // The package root is one level above dist/cli.js, two above src/cli/doctor.ts.
  for (const up of ['..', '../..']) {
    try {
      return JSON.parse(readFileSync(fileURLToPath(new URL(`${up}/${file}`, import.meta.url)), 'utf8')) as IndexConfig;
    } catch {
      // try the next place
    }
  }
  throw new Error(`cannot find the shipped ${file}`);
}

const fieldsKey = (fields: { fieldPath: string; order?: string; arrayConfig?: string }[]) => fields.map((f) => `${f.fieldPath} ${f.order ?? f.arrayConfig ?? ''}`.trim()).join(', ');

/** Compares the deployed index configuration with the shipped one. */
export function checkIndexes(input: DoctorInput): Finding[] {
  if (input.deployedIndexes === undefined) return [];
  const findings: Finding[] = [];
  const deployed = JSON.parse(input.deployedIndexes) as IndexConfig;
  const shipped = shippedIndexes(input.sharded);
  const deploy = `firebase deploy --only firestore:indexes --project ${input.project}   # with oncetask's ${input.sharded ? 'firestore.indexes.sharded.json' : 'firestore.indexes.json'}${input.collection === 'onceTasks' ? '' : ` (collection group renamed to ${input.collection})`}`;
  const rename = (group: string) => (group === 'onceTasks' ? input.collection : group === 'onceTasks_keys' ? `${input.collection}_keys` : group);
  const have = new Set((deployed.indexes ?? []).map((i) => `${i.collectionGroup}|${fieldsKey(i.fields.filter((f) => f.fieldPath !== '__name__'))}`));
  for (const index of shipped.indexes ?? []) {
    const group = rename(index.collectionGroup);
    const key = fieldsKey(index.fields.filter((f) => f.fieldPath !== '__name__'));
    if (!have.has(`${group}|${key}`)) findings.push({ check: 'indexes', problem: `composite index on ${group} (${key}) is missing: the queries that need it fail with FAILED_PRECONDITION`, fix: deploy });
  }
  const overrides = deployed.fieldOverrides ?? [];
  const ttl = overrides.some((o) => rename('onceTasks') === o.collectionGroup && o.fieldPath === 'expireAt' && o.ttl === true);
  if (!ttl) {
    findings.push({
      check: 'ttl',
      problem: `no TTL policy on ${input.collection}.expireAt: finished tasks are never deleted`,
      fix: `gcloud firestore fields ttls update expireAt --collection-group=${input.collection} --enable-ttl --project=${input.project}`,
    });
  }
  for (const wanted of shipped.fieldOverrides ?? []) {
    if (wanted.ttl || (wanted.indexes ?? []).length > 0) continue;
    const group = rename(wanted.collectionGroup);
    const exempt = overrides.some((o) => o.collectionGroup === group && o.fieldPath === wanted.fieldPath && (o.indexes ?? []).length === 0);
    if (!exempt) findings.push({ check: 'exemptions', problem: `${group}.${wanted.fieldPath} is not exempt from indexing (large or steadily increasing values cost index writes, or cap the write rate)`, fix: deploy });
  }
  return findings;
}

/** Checks that the deployed rules deny client SDKs any access to the task and lock collections. */
export function checkRules(input: DoctorInput): Finding[] {
  if (input.deployedRules === undefined) return [];
  const findings: Finding[] = [];
  for (const collection of [input.collection, `${input.collection}_keys`]) {
    const block = new RegExp(`match\\s+/${collection}/\\{[^}]+\\}\\s*\\{([^}]*)\\}`).exec(input.deployedRules);
    const denies = block !== null && /allow\s+read\s*,\s*write\s*:\s*if\s+false\s*;/.test(block[1]!) && !/allow\s+(read|write|get|list|create|update|delete)[^;]*:\s*if\s+(?!false)/.test(block[1]!);
    if (!denies) {
      findings.push({
        check: 'rules',
        problem: `the rules do not deny client access to /${collection}: a signed-in (or anonymous) client could read or change tasks`,
        fix: `firebase deploy --only firestore:rules --project ${input.project}   # with oncetask's firestore.rules merged into yours`,
      });
    }
  }
  return findings;
}

/** Checks the data: tasks stuck past their lease (no worker for their kind), and malformed documents. */
export async function checkData(manager: OnceTaskManager, input: DoctorInput, now = Date.now()): Promise<Finding[]> {
  const findings: Finding[] = [];
  const stuck: { id: string; kind: string; expiredMs: number }[] = [];
  const malformed: { docId: string; reason: string }[] = [];
  for (const status of ['running', 'cancelling'] as const) {
    for await (const page of pages(manager, { status, limit: 500 }, 10)) {
      for (const t of page.tasks) {
        const expiresAt = t.lease?.expiresAt.getTime();
        // Well past expiry (a minute on top of the clock-skew allowance): nobody recovered it.
        if (expiresAt !== undefined && now - expiresAt > 60_000) stuck.push({ id: t.id, kind: t.kind, expiredMs: now - expiresAt });
      }
      malformed.push(...page.malformed);
    }
  }
  for (const kind of new Set(stuck.map((s) => s.kind))) {
    const of = stuck.filter((s) => s.kind === kind);
    const oldest = Math.max(...of.map((s) => s.expiredMs));
    findings.push({
      check: 'stuck',
      problem: `${of.length} ${kind} task(s) stuck past their lease (the oldest expired ${Math.round(oldest / 60_000)} min ago): no worker for kind ${kind} is running`,
      fix: `start a worker that handles ${kind} (it recovers them), or: oncetask reset ${of.slice(0, 5).map((s) => s.id).join(' ')}${of.length > 5 ? ' …' : ''} --project ${input.project}`,
    });
  }
  const recent = await manager.list({ limit: 1000 });
  malformed.push(...recent.malformed);
  const unique = [...new Map(malformed.map((m) => [m.docId, m])).values()];
  if (unique.length > 0) {
    findings.push({
      check: 'malformed',
      problem: `${unique.length} malformed document(s) in ${input.collection}, e.g. ${unique[0]!.docId}: ${unique[0]!.reason}`,
      fix: `inspect and delete them in the console (https://console.cloud.google.com/firestore/databases/-default-/data/panel/${input.collection}?project=${input.project}); a worker marks the ones of its kinds failed`,
    });
  }
  return findings;
}
