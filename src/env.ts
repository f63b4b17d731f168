// The process where the runtime has one (Bun, Deno's Node compatibility, Node): its environment (else empty; read
// live), and how an environment variable's bad value ends the process.
const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; exit?(c: number): never; stderr?: { write(s: string): unknown } } }).process;

export const env: Record<string, string | undefined> = proc?.env ?? {};

/**
 * A bad environment variable found at import: a module cannot throw from its import without a stack trace, so print
 * `numedge: <message>` on one line and exit with status 1. Returns only where there is no process to exit (the
 * caller throws instead).
 */
export function exitOneLine(message: string): void {
  if (!proc?.exit || !proc.stderr) return;
  proc.stderr.write(`numedge: ${message}\n`);
  proc.exit(1);
}
