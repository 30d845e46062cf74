/** The `m1 run` HTML report: markdown tables, each output in its own block, and bundles richer than their figure. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderReport } from "../kernel/notebook/report.ts";
import { markdownToHtml } from "../kernel/notebook/markdown.ts";
import { plotlyBundle, plotlyLibraryScript } from "../engine/display.ts";
import type { Notebook, Output } from "../kernel/notebook/notebook.ts";

test("markdown tables become HTML tables; a lone pipe line stays text", () => {
  const html = markdownToHtml("intro\n\n| a | b |\n|---|:---:|\n| `x` | **y** |\n| 1 | 2 |\nafter\n\n| not a table |");
  assert.match(html, /<p>intro<\/p>\n<table class="m1-table"><thead><tr><th>a<\/th><th>b<\/th><\/tr><\/thead><tbody><tr><td><code>x<\/code><\/td><td><strong>y<\/strong><\/td><\/tr><tr><td>1<\/td><td>2<\/td><\/tr><\/tbody><\/table>\n<p>after<\/p>/);
  assert.match(html, /<p>\| not a table \|<\/p>/);
});

test("a figure renders from its plotly JSON; a bundle with more than its figure keeps its HTML, without a second plotly.js", () => {
  const figure = plotlyBundle({ data: [{ type: "scatter", y: [1, 2] }] }, { title: "plain" });
  const first = { ...figure, "text/html": plotlyLibraryScript() + figure["text/html"] };   // as the kernel sends a session's first figure
  const rich = plotlyBundle({ data: [{ type: "bar", y: [3] }] });
  const richer = { ...rich, "text/html": `<p>summary beside the plot</p>${rich["text/html"]}<table><tr><td>42</td></tr></table>` };
  const out = (data: Record<string, unknown>): Output => ({ output_type: "display_data", data, metadata: {} });
  const nb: Notebook = {
    nbformat: 4, nbformat_minor: 5, metadata: {},
    cells: [{ cell_type: "code", source: "x", metadata: {}, execution_count: 1, outputs: [out(first), out(richer), { output_type: "stream", name: "stdout", text: "hi\n" }] }],
  };
  const html = renderReport(nb, "t", null);
  assert.equal(html.match(/plotly\.js v\d/g)?.length, 1, "the library once, in the head");
  assert.match(html, /<div class="output"><div id="plot-\d+" class="plot"><\/div><script>Plotly\.newPlot/, "a plain figure draws from its JSON");
  assert.match(html, /<div class="output"><div class="html plot-bundle"><p>summary beside the plot<\/p><div id="m1-plot-[^"]+" class="m1-plotly"[\s\S]*<td>42<\/td>/, "the richer bundle keeps its summary and table");
  assert.match(html, /<div class="output"><pre class="stdout">hi\n<\/pre><\/div>/);
});
