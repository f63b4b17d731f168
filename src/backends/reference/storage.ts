// The reference backend's storage: plain typed arrays on the JS heap.
import { CTORS, type Dtype, type HostArray, type Storage } from "../../device.ts";

export const referenceStorage: Storage<HostArray> = {
  alloc: (length: number, dtype: Dtype) => new CTORS[dtype](length),
  free: () => {},
  write: (h, src) => h.set(src as never),
  read: (h) => h.slice(),
  zero: (h) => h.fill(0),
  copy: (src, dst) => dst.set(src as never),
};
