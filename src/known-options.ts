import { InvalidOptionsError } from './errors.js';

/**
 * Refuses option names the API does not know. Without it a typo (`concurency`) is silently
 * ignored and the default applies, which is found out in production if at all.
 */

/**
 * Every key of `T`, as a list: `optionNames<Options>()(['a', 'b'])` fails to compile when a key
 * of `Options` is missing from the list (or the list names one it does not have), so the lists
 * of known options cannot drift from the documented interfaces.
 */
export function optionNames<T>() {
  return <const L extends readonly (keyof T & string)[]>(names: L & (Exclude<keyof T, L[number]> extends never ? unknown : { missing: Exclude<keyof T, L[number]> })): readonly string[] => names;
}

/** Throws {@link InvalidOptionsError} for the first key of `value` not in `known`, naming the closest known one. */
export function assertKnownOptions(value: unknown, known: readonly string[], where: string): void {
  if (typeof value !== 'object' || value === null) return; // the caller's own checks report a non-object
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const closest = closestName(key, known);
    const hint = closest === null ? `known options: ${known.join(', ')}` : `did you mean "${closest}"?`;
    throw new InvalidOptionsError(`${where}: unknown option "${key}" (${hint})`);
  }
}

/** The known name nearest to `name` by edit distance, if one is near enough to be a typo (case aside). */
function closestName(name: string, known: readonly string[]): string | null {
  let best: { name: string; distance: number } | null = null;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (best === null || distance < best.distance) best = { name: candidate, distance };
  }
  return best !== null && best.distance <= Math.max(2, Math.floor(best.name.length / 3)) ? best.name : null;
}

/** Levenshtein distance (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
