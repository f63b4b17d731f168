// Seeded counter-based randomness: value i of stream `seed` is a pure function of (seed, i), so any backend,
// any order of calls and any thread gets the same numbers (stochastic rounding, data splits, init).

/** 32-bit integer finalizer (lowbias32): good avalanche, cheap. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Uniform in [0, 1) with 53 random bits, from (seed, i) alone.
 * @example const u = hash01(42, elementIndex) // stochastic rounding: round up when u < frac
 */
export function hash01(seed: number, i: number): number {
  const s = mix32((seed | 0) ^ 0x9e3779b9);
  const lo = i >>> 0, hi = Math.floor(i / 4294967296) >>> 0;
  const a = mix32(s ^ mix32(lo ^ mix32(hi + 0x85ebca6b)));
  const b = mix32(a ^ 0xc2b2ae35);
  return ((a >>> 5) * 67108864 + (b >>> 6)) / 9007199254740992;
}

/**
 * A seeded generator walking one counter-based stream.
 * @example const rng = new Rng(0); const w = Float32Array.from({ length: 10 }, () => rng.normal())
 */
export class Rng {
  private i = 0;
  constructor(readonly seed: number) {}
  /** Uniform in [0, 1). */
  next(): number {
    return hash01(this.seed, this.i++);
  }
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next(), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}
