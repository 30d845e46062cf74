/** How the kernel turns a value into a MIME bundle: `[Symbol.for("Jupyter.display")]()`, Arrow tables, or text. */
import { inspect } from "node:util";
import { DISPLAY, PLOTLY_MIME, arrowTableBundle, plotlyLibraryScript } from "../../engine/display.ts";

export interface DisplayData {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

function isArrowTable(v: object): boolean {
  const t = v as { schema?: { fields?: unknown }; numRows?: unknown; getChildAt?: unknown };
  return Array.isArray(t.schema?.fields) && typeof t.numRows === "number" && typeof t.getChildAt === "function";
}

export function bundleOf(value: unknown): DisplayData {
  if (value !== null && (typeof value === "object" || typeof value === "function")) {
    const show = (value as { [DISPLAY]?: () => unknown })[DISPLAY];
    if (typeof show === "function") {
      const bundle = show.call(value) as Record<string, unknown> | null;
      if (bundle && typeof bundle === "object") {
        const data = "data" in bundle && typeof bundle.data === "object" ? (bundle.data as Record<string, unknown>) : bundle;
        const metadata = "metadata" in bundle && bundle.data ? (bundle.metadata as Record<string, unknown>) : {};
        return { data: { "text/plain": inspect(value), ...data }, metadata };
      }
    }
    if (isArrowTable(value)) return { data: arrowTableBundle(value as never), metadata: {} };
  }
  return { data: { "text/plain": typeof value === "string" ? inspect(value) : inspect(value, { depth: 4 }) }, metadata: {} };
}

/** Puts plotly.js in front of the first figure's HTML of this kernel session, so the library loads once per notebook. */
export class PlotlyOnce {
  private sent = false;

  apply(d: DisplayData): DisplayData {
    if (this.sent || !(PLOTLY_MIME in d.data) || typeof d.data["text/html"] !== "string") return d;
    this.sent = true;
    return { ...d, data: { ...d.data, "text/html": plotlyLibraryScript() + d.data["text/html"] } };
  }
}
