import { Timestamp } from '@google-cloud/firestore';
import { describe, expect, it } from 'vitest';
import { appendError, decodeStoredTask, MAX_RECORDED_ERRORS, toTaskInfo } from '../src/task-document.js';

const now = Timestamp.now();
const valid = {
  id: 'a', kind: 'k', env: 'e', status: 'pending', data: { at: now }, resourceKey: null,
  waitUntil: now, createdAt: now, updatedAt: now, seq: 1, attempts: 0, errorCount: 0, errors: [],
  result: null, doneAt: null, expireAt: null, lease: { token: 't', workerId: 'w', expiresAt: now },
};

describe('decodeStoredTask', () => {
  it('accepts the stored shape and hides the lease token in the public view', () => {
    const decoded = decodeStoredTask(valid);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    const info = toTaskInfo(decoded.task);
    expect(info.lease).toEqual({ workerId: 'w', expiresAt: now.toDate() });
    expect(info.waitUntil).toBeInstanceOf(Date);
    expect((info.data as { at: Date }).at).toBeInstanceOf(Date);
  });

  it('names the offending field of a malformed document', () => {
    expect(decodeStoredTask({ ...valid, attempts: 'three' })).toMatchObject({ ok: false, reason: expect.stringMatching(/field "attempts"/) });
    expect(decodeStoredTask({ ...valid, waitUntil: '2026-01-01' })).toMatchObject({ ok: false, reason: expect.stringMatching(/waitUntil/) });
    expect(decodeStoredTask({ ...valid, status: 'exploded' })).toMatchObject({ ok: false, reason: expect.stringMatching(/status/) });
    expect(decodeStoredTask(undefined)).toMatchObject({ ok: false });
  });
});

describe('appendError', () => {
  it(`keeps only the last ${MAX_RECORDED_ERRORS} errors`, () => {
    let errors = [] as ReturnType<typeof appendError>;
    for (let i = 1; i <= 25; i++) errors = appendError(errors, { at: new Date(), attempt: i, message: `e${i}`, code: null, stack: null });
    expect(errors).toHaveLength(MAX_RECORDED_ERRORS);
    expect(errors[0]!.attempt).toBe(6);
    expect(errors.at(-1)!.attempt).toBe(25);
  });
});
