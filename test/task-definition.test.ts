import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InvalidIdError, InvalidOptionsError, InvalidPayloadError } from '../src/errors.js';
import { defineTask, identify, parsePayload } from '../src/task-definition.js';

const email = defineTask({
  kind: 'send-email',
  schema: z.object({ to: z.email(), profile: z.object({ name: z.string() }) }),
  id: (d) => `welcome:${d.to}`,
  resourceKey: (d) => d.to,
});

describe('defineTask', () => {
  it('refuses bad kinds, schemas and functions', () => {
    expect(() => defineTask({ kind: 'has space', schema: z.object({}), id: () => 'x' })).toThrow(InvalidOptionsError);
    expect(() => defineTask({ kind: '', schema: z.object({}), id: () => 'x' })).toThrow(/kind/);
    expect(() => defineTask({ kind: 'k', schema: {} as never, id: () => 'x' })).toThrow(/zod schema/);
    expect(() => defineTask({ kind: 'k', schema: z.object({}), id: 'x' as never })).toThrow(/id must be a function/);
  });
});

describe('parsePayload', () => {
  it('names the bad field in the error', () => {
    const err = (() => {
      try {
        parsePayload(email, { to: 'a@b.co', profile: { name: 42 } });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidPayloadError);
    expect((err as InvalidPayloadError).code).toBe('INVALID_PAYLOAD');
    expect((err as InvalidPayloadError).message).toMatch(/field "profile.name"/);
    expect((err as InvalidPayloadError).issues[0]!.path).toBe('profile.name');
  });
});

describe('identify', () => {
  it('computes the id and resource key from the parsed payload', () => {
    expect(identify(email, { to: 'a@b.co', profile: { name: 'A' } })).toEqual({ id: 'welcome:a@b.co', resourceKey: 'a@b.co' });
  });

  it('refuses ids Firestore cannot address', () => {
    const slash = defineTask({ kind: 'k', schema: z.object({ p: z.string() }), id: (d) => d.p });
    expect(() => identify(slash, { p: 'a/b' })).toThrow(InvalidIdError);
    expect(() => identify(slash, { p: '' })).toThrow(/non-empty/);
    expect(() => identify(slash, { p: 'x'.repeat(501) })).toThrow(/500 bytes/);
  });
});
