// Kernels that have no version on a backend's own storage run on host arrays: a call with that backend's handles
// (also one level inside plain objects, like Adam8bit's state) reads them to the host, runs the host kernel, and
// writes back the handles whose bytes changed. Host-array calls go straight through. backendInfo().stagedOps
// lists the kernels a backend runs this way.
import type { HostArray, Storage } from "../../device.ts";

const isPlain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;

/**
 * `fn` with arguments for which `isHandle` holds read to the host (or, where `inPlace` gives one, used as that host
 * array directly) and changed ones written back.
 */
export function stagedBy(storage: Storage, fn: (...a: unknown[]) => unknown, isHandle: (v: unknown) => boolean,
  inPlace: (h: unknown) => HostArray | undefined = () => undefined): (...a: unknown[]) => unknown {
  return (...args: unknown[]) => {
    if (!args.some((a) => isHandle(a) || (isPlain(a) && Object.values(a).some(isHandle)))) return fn(...args);
    const host = new Map<unknown, [HostArray, HostArray]>();
    const stage = (v: unknown) => {
      if (!isHandle(v)) return v;
      let e = host.get(v);
      if (!e) {
        const direct = inPlace(v), a = direct ?? storage.read(v);
        host.set(v, (e = [a, direct ? a : a.slice()]));
      }
      return e[0];
    };
    const r = fn(...args.map((a) => (isPlain(a) ? Object.fromEntries(Object.entries(a).map(([k, v]) => [k, stage(v)])) : stage(a))));
    for (const [h, [a, before]] of host) {
      if (a === before) continue;
      const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), y = new Uint8Array(before.buffer);
      if (x.some((v, i) => v !== y[i])) storage.write(h, a);
    }
    return r;
  };
}
