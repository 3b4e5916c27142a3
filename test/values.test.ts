import { Timestamp } from '@google-cloud/firestore';
import { describe, expect, it } from 'vitest';
import { UnencodableValueError } from '../src/errors.js';
import { fromFirestoreValue, toFirestoreValue } from '../src/values.js';

describe('toFirestoreValue', () => {
  it('drops undefined properties, keeps dates, bytes and nested maps', () => {
    const date = new Date('2026-01-02T03:04:05.678Z');
    const bytes = new Uint8Array([1, 2]);
    expect(toFirestoreValue({ a: 1, b: undefined, c: { d: date, e: [1, 'x', null] }, f: bytes }, 'v')).toEqual({
      a: 1,
      c: { d: date, e: [1, 'x', null] },
      f: bytes,
    });
    expect(toFirestoreValue(undefined, 'v')).toBeNull();
  });

  it('names the path of a value Firestore cannot store', () => {
    expect(() => toFirestoreValue({ a: { b: [1, () => 2] } }, 'result')).toThrow(/result at "a.b\[1\]": a function/);
    expect(() => toFirestoreValue({ m: new Map() }, 'result')).toThrow(/"m": an instance of Map/);
    expect(() => toFirestoreValue({ x: [[1]] }, 'result')).toThrow(/arrays of arrays/);
    expect(() => toFirestoreValue({ when: new Date('nope') }, 'result')).toThrow(/invalid Date/);
    expect(() => toFirestoreValue(2n ** 70n, 'result')).toThrow(/64-bit/);
  });

  it('detects cycles and excessive depth', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => toFirestoreValue(cyclic, 'v')).toThrow(UnencodableValueError);
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 30; i++) deep = (deep.n = {}) as Record<string, unknown>;
    expect(() => toFirestoreValue(root, 'v')).toThrow(/nested deeper/);
  });

  it('allows the same object twice when it is not a cycle', () => {
    const shared = { k: 1 };
    expect(toFirestoreValue({ a: shared, b: shared }, 'v')).toEqual({ a: { k: 1 }, b: { k: 1 } });
  });
});

describe('fromFirestoreValue', () => {
  it('turns Timestamps back into Dates at any depth', () => {
    const ts = Timestamp.fromMillis(1_700_000_000_123);
    const out = fromFirestoreValue({ at: ts, list: [{ at: ts }], n: 1 }) as { at: Date; list: { at: Date }[]; n: number };
    expect(out.at).toBeInstanceOf(Date);
    expect(out.at.getTime()).toBe(1_700_000_000_123);
    expect(out.list[0]!.at.getTime()).toBe(1_700_000_000_123);
    expect(out.n).toBe(1);
  });
});

describe('integers read with useBigInt', () => {
  it('become numbers when safe and stay bigints when larger', () => {
    expect(fromFirestoreValue({ n: 42n, big: 2n ** 60n, list: [1n] })).toEqual({ n: 42, big: 2n ** 60n, list: [1] });
  });
});
