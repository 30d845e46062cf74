/**
 * The self-contained HTML report of an executed notebook: sources, outputs, figures drawn offline (plotly.js inline
 * once, in the head, only when the notebook has a figure).
 */
import { PLOTLY_MIME, escapeHtml, plotlyLibraryScript } from "../../engine/display.ts";
import { markdownToHtml } from "./markdown.ts";
import { sourceOf, type Notebook, type Output } from "./notebook.ts";

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #1d1d1f; }
.cell { margin: 1.2em 0; }
.prompt { color: #6a6a6a; font: 12px monospace; }
pre { background: #f6f8fa; padding: .6em .8em; overflow-x: auto; border-radius: 4px; margin: .3em 0; }
pre.source { border-left: 3px solid #4a7fd4; }
pre.stderr { background: #fdf0ef; }
pre.error { background: #fde7e7; color: #8b0000; }
.failed { border-left: 4px solid #c00; padding-left: .6em; }
.status { padding: .5em .8em; border-radius: 4px; background: #e8f5e9; }
.status.bad { background: #fde7e7; }
table.m1-table { border-collapse: collapse; font-size: 13px; }
table.m1-table td, table.m1-table th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
.markdown table.m1-table td, .markdown table.m1-table th { text-align: left; }
`;

const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");
const text = (v: unknown) => (Array.isArray(v) ? v.join("") : String(v ?? ""));
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, "\\u003c");

let plots = 0;

let library: string | undefined;

/**
 * A bundle's text/html when it shows more than its figure (e.g. a summary or a table beside the plot), without the
 * plotly.js library the kernel puts in front of a session's first figure (the report has it in its head); null
 * when the html is only the figure's offline fallback.
 */
function richerHtml(data: Record<string, unknown>): string | null {
  if (data["text/html"] === undefined) return null;
  library ??= plotlyLibraryScript();
  const html = text(data["text/html"]).replace(library, "");
  const figureOnly = /^\s*<div id="m1-plot-[^"]*" class="m1-plotly"[^>]*>[^<]*<\/div>\s*<script>[\s\S]*<\/script>\s*$/.test(html) && html.split('class="m1-plotly"').length === 2;
  return figureOnly ? null : html;
}

function renderData(data: Record<string, unknown>): string {
  const richer = data[PLOTLY_MIME] ? richerHtml(data) : null;
  if (richer !== null) return `<div class="html plot-bundle">${richer}</div>`;
  if (data[PLOTLY_MIME]) {
    const fig = data[PLOTLY_MIME] as { data?: unknown; layout?: unknown; config?: unknown };
    const id = `plot-${plots++}`;
    return `<div id="${id}" class="plot"></div><script>Plotly.newPlot("${id}", ${scriptJson(fig.data ?? [])}, ${scriptJson(fig.layout ?? {})}, ${scriptJson({ responsive: true, ...(fig.config ?? {}) })});</script>`;
  }
  if (data["text/html"] !== undefined) return `<div class="html">${text(data["text/html"])}</div>`;
  if (data["image/svg+xml"] !== undefined) return text(data["image/svg+xml"]);
  for (const type of ["image/png", "image/jpeg", "image/gif"]) {
    if (data[type] !== undefined) return `<img src="data:${type};base64,${text(data[type]).replace(/\s/g, "")}">`;
  }
  if (data["text/markdown"] !== undefined) return markdownToHtml(text(data["text/markdown"]));
  if (data["application/json"] !== undefined) return `<pre>${escapeHtml(JSON.stringify(data["application/json"], null, 2))}</pre>`;
  return `<pre>${escapeHtml(text(data["text/plain"] ?? data["text/latex"] ?? ""))}</pre>`;
}

function renderOutput(o: Output): string {
  if (o.output_type === "stream") return `<pre class="${o.name === "stderr" ? "stderr" : "stdout"}">${escapeHtml(text(o.text))}</pre>`;
  if (o.output_type === "error") return `<pre class="error">${escapeHtml(stripAnsi((o.traceback as string[]).join("\n") || `${o.ename}: ${o.evalue}`))}</pre>`;
  return renderData(o.data as Record<string, unknown>);
}

/** `failed`: index of the cell that stopped the run, marked in the report. */
export function renderReport(nb: Notebook, title: string, failed: number | null): string {
  const hasPlot = nb.cells.some((c) => c.outputs?.some((o) => (o.data as Record<string, unknown> | undefined)?.[PLOTLY_MIME]));
  const cells = nb.cells.map((cell, i) => {
    if (cell.cell_type === "markdown") return `<div class="cell markdown">${markdownToHtml(sourceOf(cell))}</div>`;
    if (cell.cell_type === "raw") return `<div class="cell raw"><pre>${escapeHtml(sourceOf(cell))}</pre></div>`;
    const prompt = `In [${cell.execution_count ?? " "}]:`;
    return (
      `<div class="cell code${i === failed ? " failed" : ""}"><div class="prompt">${prompt}</div>` +
      `<pre class="source">${escapeHtml(sourceOf(cell))}</pre>${(cell.outputs ?? []).map((o) => `<div class="output">${renderOutput(o)}</div>`).join("\n")}</div>`
    );
  });
  const status =
    failed === null
      ? `<p class="status">All cells ran.</p>`
      : `<p class="status bad">The run stopped at cell ${failed + 1}; later cells did not run.</p>`;
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style>
${hasPlot ? plotlyLibraryScript() : ""}</head>
<body><h1 class="title">${escapeHtml(title)}</h1>${status}
${cells.join("\n")}
</body></html>
`;
}
