// Small helpers shared by the test files.
import { expect } from "bun:test";
import { NumedgeError, Rng, type NumedgeErrorCode } from "numedge";

/** fn must throw a NumedgeError (with `code`, when given) whose message contains every mention. */
export function expectError(fn: () => unknown, code: NumedgeErrorCode | undefined, ...mentions: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(NumedgeError);
  const e = err as NumedgeError;
  if (code !== undefined) expect(e.code).toBe(code);
  for (const m of mentions) expect(e.message).toContain(m);
}

/** A seeded uniform [0, 1) generator as a plain function. */
export function uniform(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}
