import { InvalidOptionsError } from './errors.js';

/**
 * Task labels: up to {@link MAX_LABELS} `key → value` strings set at create time (from the
 * definition's `labels(data)` and/or the `labels` option), stored as a map for reading and as
 * `labelPairs` (`key=value` strings) for the one indexed label query.
 */

/** Most labels per task. */
export const MAX_LABELS = 10;
/** A label key: a letter, then letters, digits, `_`, `-`, `.`; at most 63 characters. */
const KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;
/** Longest label value, in characters. */
const MAX_VALUE_LENGTH = 200;

/** Checks labels (throws {@link InvalidOptionsError} naming the bad one) and returns a copy. */
export function checkLabels(labels: unknown, where: string): Record<string, string> {
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw new InvalidOptionsError(`${where}: labels must be an object of strings`);
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > MAX_LABELS) throw new InvalidOptionsError(`${where}: at most ${MAX_LABELS} labels per task (got ${entries.length})`);
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (!KEY_PATTERN.test(key)) throw new InvalidOptionsError(`${where}: label key ${JSON.stringify(key)} must be a letter then up to 62 letters, digits, "_", "-", "."`);
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_VALUE_LENGTH) {
      throw new InvalidOptionsError(`${where}: label "${key}" must be a non-empty string of at most ${MAX_VALUE_LENGTH} characters`);
    }
    out[key] = value;
  }
  return out;
}

/** The indexed form of labels: `key=value` strings (a key never holds `=`, so the first `=` splits). */
export function labelPairs(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).sort();
}
