// Line plots as standalone SVG: panels in a grid, each with its own axes, ticks and legend (in a band right of
// the plot area, never over the data).
// No dependencies, so a script's plot opens in any browser straight from its run directory.

export interface Series {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
  dash?: boolean;
  /** Line width (default 1.6). Series are drawn in order: a wide line under a dashed one keeps both visible. */
  width?: number;
  /** Error bars: y ± err[i] at each point, with a dot (aggregated sweeps: mean ± std). */
  err?: ArrayLike<number>;
}

export interface Panel {
  title: string;
  xLabel?: string;
  yLabel?: string;
  logX?: boolean;
  logY?: boolean;
  yMin?: number;
  yMax?: number;
  /** The x range even where y is missing (NaN) at its ends. */
  xMin?: number;
  xMax?: number;
  series: Series[];
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function niceTicks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Ticks for a log10 axis: whole decades when the axis spans at least one, else nice linear ticks of log10. */
function axisTicks(lo: number, hi: number, log: boolean | undefined): number[] {
  if (!log || hi - lo < 1) return niceTicks(lo, hi);
  const step = Math.ceil((hi - lo) / 6);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(v);
  return out;
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential(0) : String(Number(v.toPrecision(4)));
}

function panelSvg(p: Panel, x0: number, y0: number, w: number, h: number, colorOf: (name: string) => string): string {
  const legendW = p.series.length ? 34 + 6 * Math.max(...p.series.map((s) => s.name.length)) : 0;
  const m = { l: 56, r: 12 + legendW, t: 26, b: 38 };
  const pw = w - m.l - m.r, ph = h - m.t - m.b;
  const tx = (v: number) => (p.logX ? Math.log10(v) : v), ty = (v: number) => (p.logY ? Math.log10(v) : v);
  let xl = Infinity, xh = -Infinity, yl = Infinity, yh = -Infinity;
  for (const s of p.series)
    for (let i = 0; i < s.x.length; i++) {
      const X = tx(s.x[i]!), Y = ty(s.y[i]!);
      if (!Number.isFinite(X) || !Number.isFinite(Y)) continue;
      const e = s.err?.[i] ?? 0;
      xl = Math.min(xl, X); xh = Math.max(xh, X); yl = Math.min(yl, Y - e); yh = Math.max(yh, Y + e);
    }
  if (p.xMin !== undefined) xl = tx(p.xMin);
  if (p.xMax !== undefined) xh = tx(p.xMax);
  if (p.yMin !== undefined) yl = ty(p.yMin);
  if (p.yMax !== undefined) yh = ty(p.yMax);
  if (!Number.isFinite(xl)) { xl = 0; xh = 1; }
  if (!Number.isFinite(yl)) { yl = 0; yh = 1; }
  if (xh === xl) xh = xl + 1;
  if (yh === yl) yh = yl + 1;
  const sx = (v: number) => x0 + m.l + ((v - xl) / (xh - xl)) * pw;
  const sy = (v: number) => y0 + m.t + ph - ((v - yl) / (yh - yl)) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${x0 + m.l + pw / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  parts.push(`<rect x="${x0 + m.l}" y="${y0 + m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  for (const v of axisTicks(xl, xh, p.logX)) {
    const X = sx(v);
    parts.push(`<line x1="${X}" y1="${y0 + m.t}" x2="${X}" y2="${y0 + m.t + ph}" stroke="#eee"/>`);
    parts.push(`<text x="${X}" y="${y0 + m.t + ph + 14}" text-anchor="middle" font-size="10">${fmt(p.logX ? 10 ** v : v)}</text>`);
  }
  for (const v of axisTicks(yl, yh, p.logY)) {
    const Y = sy(v);
    parts.push(`<line x1="${x0 + m.l}" y1="${Y}" x2="${x0 + m.l + pw}" y2="${Y}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 + m.l - 4}" y="${Y + 3}" text-anchor="end" font-size="10">${fmt(p.logY ? 10 ** v : v)}</text>`);
  }
  if (p.xLabel) parts.push(`<text x="${x0 + m.l + pw / 2}" y="${y0 + h - 6}" text-anchor="middle" font-size="11">${esc(p.xLabel)}</text>`);
  if (p.yLabel)
    parts.push(`<text transform="translate(${x0 + 12},${y0 + m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(p.yLabel)}</text>`);
  p.series.forEach((s, k) => {
    const c = s.color ?? colorOf(s.name);
    const style = `stroke="${c}" stroke-width="${s.width ?? 1.6}"${s.dash ? ' stroke-dasharray="5,3"' : ""}`;
    let d = "", pen = false;
    for (let i = 0; i < s.x.length; i++) {
      const X = tx(s.x[i]!), Y = ty(s.y[i]!);
      if (!Number.isFinite(X) || !Number.isFinite(Y)) { pen = false; continue; }
      const cy = Math.min(Math.max(Y, yl), yh);
      d += `${pen ? "L" : "M"}${sx(X).toFixed(1)},${sy(cy).toFixed(1)}`;
      pen = true;
    }
    parts.push(`<path d="${d}" fill="none" ${style}/>`);
    for (let i = 0; s.err && i < s.x.length; i++) {
      const X = sx(tx(s.x[i]!)), Y = ty(s.y[i]!), e = s.err[i] ?? 0;
      if (!Number.isFinite(X) || !Number.isFinite(Y)) continue;
      const lo = sy(Math.max(Y - e, yl)).toFixed(1), hi = sy(Math.min(Y + e, yh)).toFixed(1);
      parts.push(`<path d="M${(X - 3).toFixed(1)},${lo}h6M${X.toFixed(1)},${lo}V${hi}M${(X - 3).toFixed(1)},${hi}h6" stroke="${c}" fill="none"/>`);
      parts.push(`<circle cx="${X.toFixed(1)}" cy="${sy(Y).toFixed(1)}" r="2.5" fill="${c}"/>`);
    }
    const lx = x0 + m.l + pw + 10, ly = y0 + m.t + 10 + k * 14;
    parts.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" ${style}/>`);
    parts.push(`<text x="${lx + 22}" y="${ly}" font-size="10">${esc(s.name)}</text>`);
  });
  return parts.join("\n");
}

/**
 * Panels of line plots in a grid, as a standalone SVG document. Non-finite points break the line.
 * @example writeFileSync("plot.svg", svgPlot([{ title: "loss", series: [{ name: "adam", x: steps, y: loss }] }]))
 */
export function svgPlot(panels: Panel[], o: { title?: string; width?: number; height?: number; cols?: number } = {}): string {
  const cols = Math.max(1, Math.min(o.cols ?? Math.min(panels.length, 3), panels.length || 1));
  const rowsN = Math.ceil(panels.length / cols) || 1;
  const w = o.width ?? 420, h = o.height ?? 300, top = o.title ? 28 : 0;
  const colors = new Map<string, string>();
  const colorOf = (name: string) => {
    if (!colors.has(name)) colors.set(name, PALETTE[colors.size % PALETTE.length]!);
    return colors.get(name)!;
  };
  const body = panels.map((p, i) => panelSvg(p, (i % cols) * w, top + Math.floor(i / cols) * h, w, h, colorOf));
  const W = cols * w, H = top + rowsN * h;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    o.title ? `<text x="${W / 2}" y="19" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>` : "",
    ...body,
    "</svg>",
  ].join("\n") + "\n";
}
