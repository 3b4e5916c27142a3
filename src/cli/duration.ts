import { InvalidOptionsError } from '../errors.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** Parses `90s`, `15m`, `12h`, `7d`, `2w` into ms. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  if (!match) throw new InvalidOptionsError(`not a duration: ${JSON.stringify(text)} (use e.g. 90s, 15m, 12h, 7d, 2w)`);
  return Number(match[1]) * UNITS[match[2]!]!;
}
