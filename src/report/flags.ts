// Command-line flags for experiment scripts: typed, checked, one-line errors, --help.

export interface FlagSpec {
  type: "int" | "number" | "string" | "list" | "bool";
  default?: unknown;
  help: string;
  min?: number;
  max?: number;
  exclusiveMin?: number;
  exclusiveMax?: number;
  /** Allowed values (for "string", and for each item of "list"). */
  choices?: string[];
}

type Value<S extends FlagSpec> = S["type"] extends "int" | "number" ? number
  : S["type"] extends "bool" ? boolean : S["type"] extends "list" ? string[] : string;
export type Flags<T extends Record<string, FlagSpec>> = { [K in keyof T]: Value<T[K]> };

/**
 * Thrown by parseFlagsOrThrow; parseFlags prints its message and exits 2.
 * @example try { parseFlagsOrThrow(["--p", "x"], spec) } catch (e) { if (e instanceof FlagError) console.error(e.message) }
 */
export class FlagError extends Error {}

function fail(msg: string): never {
  throw new FlagError(msg);
}

function convert(name: string, s: FlagSpec, raw: string): unknown {
  if (s.type === "string") {
    if (s.choices && !s.choices.includes(raw)) fail(`--${name} must be one of ${s.choices.join("|")}, got "${raw}"`);
    return raw;
  }
  if (s.type === "list") {
    const items = raw.split(",").map((v) => v.trim()).filter((v) => v.length > 0);
    if (items.length === 0) fail(`--${name} must be a non-empty comma-separated list, got "${raw}"`);
    for (const v of items)
      if (s.choices && !s.choices.includes(v)) fail(`--${name}: unknown value "${v}" (choose from ${s.choices.join(",")})`);
    return items;
  }
  if (s.type === "bool") {
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    fail(`--${name} must be true or false, got "${raw}"`);
  }
  const v = raw.trim() === "" ? NaN : Number(raw);
  const what = s.type === "int" ? "an integer" : "a number";
  if (!Number.isFinite(v) || (s.type === "int" && !Number.isInteger(v))) fail(`--${name} must be ${what}, got "${raw}"`);
  if (s.min !== undefined && v < s.min) fail(`--${name} must be ${what} >= ${s.min}, got "${raw}"`);
  if (s.max !== undefined && v > s.max) fail(`--${name} must be ${what} <= ${s.max}, got "${raw}"`);
  if (s.exclusiveMin !== undefined && !(v > s.exclusiveMin)) fail(`--${name} must be ${what} > ${s.exclusiveMin}, got "${raw}"`);
  if (s.exclusiveMax !== undefined && !(v < s.exclusiveMax)) fail(`--${name} must be ${what} < ${s.exclusiveMax}, got "${raw}"`);
  return v;
}

/** One line per flag: type, help, valid choices, default. */
function helpText(spec: Record<string, FlagSpec>): string {
  return Object.entries(spec)
    .map(([k, s]) => `  --${k}${s.type === "bool" ? "" : ` <${s.type}>`}  ${s.help}` +
      (s.choices ? `; ${s.type === "list" ? "any of" : "one of"} ${s.choices.join(s.type === "list" ? "," : "|")}` : "") +
      (s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : ""))
    .join("\n");
}

/**
 * Like parseFlags, but throws FlagError instead of exiting (for tests and embedding).
 * @example const f = parseFlagsOrThrow(["--p", "31"], { p: { type: "int", default: 97, min: 2, help: "modulus" } }) // f.p === 31
 */
export function parseFlagsOrThrow<T extends Record<string, FlagSpec>>(argv: string[], spec: T): Flags<T> & { help: boolean } {
  const out: Record<string, unknown> = { help: false };
  for (const [k, s] of Object.entries(spec)) out[k] = s.default === undefined ? undefined : s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--help" || a === "-h") { out.help = true; continue; }
    if (!a.startsWith("--")) fail(`unexpected argument "${a}" (flags look like --name value)`);
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const s = spec[name];
    if (!s) fail(`unknown flag --${name} (try --help)`);
    let raw: string;
    if (eq > 0) raw = a.slice(eq + 1);
    else if (s.type === "bool" && (i + 1 >= argv.length || argv[i + 1]!.startsWith("--"))) raw = "true";
    else if (i + 1 < argv.length) raw = argv[++i]!;
    else fail(`--${name} needs a value`);
    out[name] = convert(name, s, raw);
  }
  return out as Flags<T> & { help: boolean };
}

/**
 * Parse `--name value` / `--name=value` flags; bad input prints one line and exits 2, --help prints help (the
 * flags with their choices and defaults) and exits 0; `--flags-json` alone prints the specs as JSON (for sweeps).
 * @example const f = parseFlags(process.argv.slice(2), { p: { type: "int", default: 97, min: 2, help: "modulus" } })
 */
export function parseFlags<T extends Record<string, FlagSpec>>(argv: string[], spec: T, usage = ""): Flags<T> {
  const proc = (globalThis as unknown as { process: { exit(c: number): never; stderr: { write(s: string): void }; stdout: { write(s: string): void } } }).process;
  if (argv.length === 1 && argv[0] === "--flags-json") { // the specs, for a sweep to check its points before running any
    proc.stdout.write(JSON.stringify(spec) + "\n");
    return proc.exit(0);
  }
  try {
    const { help, ...flags } = parseFlagsOrThrow(argv, spec);
    if (help) {
      proc.stdout.write(`${usage ? usage + "\n" : ""}flags:\n${helpText(spec)}\n`);
      proc.exit(0);
    }
    return flags as unknown as Flags<T>; // without `help`, so a script can record its flags as its config
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    proc.stderr.write(`error: ${e.message}\n`);
    return proc.exit(2);
  }
}
