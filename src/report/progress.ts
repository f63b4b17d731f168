// A one-line progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise (CI logs).

/**
 * A progress bar for `total` units on stderr: tick(n, status) advances it, done(status) ends the line.
 * @example const bar = progress("baseline", steps); for (...) bar.tick(1, `test ${acc}`); bar.done()
 */
export function progress(label: string, total: number) {
  const err = (globalThis as { process?: { stderr?: { isTTY?: boolean; write(s: string): unknown } } }).process?.stderr;
  const tty = !!err?.isTTY;
  const t0 = performance.now();
  let n = 0, lastDraw = 0, lastDecile = -1;
  const line = (status: string) => {
    const f = total > 0 ? Math.min(1, n / total) : 1;
    const w = 24, full = Math.round(f * w);
    const secs = (performance.now() - t0) / 1000;
    const eta = f > 0 && f < 1 ? ` eta ${Math.round((secs / f) * (1 - f))}s` : "";
    return `${label} [${"#".repeat(full)}${"-".repeat(w - full)}] ${(f * 100).toFixed(0).padStart(3)}% ${n}/${total} ${secs.toFixed(1)}s${eta}${status ? "  " + status : ""}`;
  };
  const draw = (status: string, force = false) => {
    if (!err) return;
    if (tty) {
      const now = performance.now();
      if (!force && now - lastDraw < 100) return;
      lastDraw = now;
      err.write(`\r\x1b[2K${line(status)}`);
    } else {
      const decile = Math.floor((n / Math.max(total, 1)) * 10);
      if (!force && decile === lastDecile) return;
      lastDecile = decile;
      err.write(line(status) + "\n");
    }
  };
  return {
    /** Advance by k (default 1); status is shown after the bar. */
    tick(k = 1, status = "") {
      n += k;
      draw(status);
    },
    /** Final redraw and newline. */
    done(status = "") {
      n = Math.max(n, total);
      draw(status, tty);
      if (tty && err) err.write("\n");
    },
  };
}
