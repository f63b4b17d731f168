// The process environment where the runtime has one (Bun, Deno's Node compatibility, Node), else empty: read live.
export const env: Record<string, string | undefined> =
  (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
