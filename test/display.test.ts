/** MIME bundles: figures with an offline fallback, Arrow tables with limits, tensors, and how the kernel picks them. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { tableFromArrays } from "apache-arrow";
import { DISPLAY, PLOTLY_MIME, DATARESOURCE_MIME, arrowTableBundle, plotlyBundle, plotlyLibraryScript, tensorBundle, htmlBundle } from "../engine/display.ts";
import { bundleOf, PlotlyOnce } from "../kernel/jupyter/display.ts";

test("plotlyBundle: plotly JSON, an HTML fallback drawing with window.Plotly (queued until it exists), text", () => {
  const b = plotlyBundle({ data: [{ type: "bar", x: [1, 2], y: [3, 4] }] }, { title: "bars </script>" });
  const fig = b[PLOTLY_MIME] as { data: unknown[]; layout: { title: { text: string } } };
  assert.equal(fig.layout.title.text, "bars </script>");
  const html = b["text/html"] as string;
  assert.match(html, /window\.Plotly\.newPlot/);
  assert.match(html, /__m1PlotlyQueue/);
  assert.doesNotMatch(html.slice(html.indexOf("<script>") + 8, html.lastIndexOf("</script>")), /<\/script/i, "figure JSON cannot close the script");
  assert.ok(html.length < 2000, "the library is not in each figure");
  assert.equal(b["text/plain"], "bars </script> (1 trace: bar)");
  assert.notEqual(plotlyBundle({ data: [] })["text/html"], plotlyBundle({ data: [] })["text/html"], "each figure has its own element id");
});

test("the kernel puts plotly.js in front of the first figure of a session only", () => {
  const once = new PlotlyOnce();
  const fig = { [DISPLAY]: () => plotlyBundle({ data: [{ type: "scatter", y: [1] }] }) };
  const first = once.apply(bundleOf(fig)).data["text/html"] as string;
  const second = once.apply(bundleOf(fig)).data["text/html"] as string;
  assert.ok(first.startsWith(plotlyLibraryScript()));
  assert.match(plotlyLibraryScript(), /if \(!window\.Plotly\)/);
  assert.ok(!second.includes("plotly.js v"));
  assert.ok(once.apply(bundleOf(1)).data["text/plain"] === "1");
});

test("arrowTableBundle: HTML limited to maxRows × maxCols, dataresource JSON, text; int64 and NaN as JSON", () => {
  const columns: Record<string, Float64Array | BigInt64Array> = { big: BigInt64Array.from([1n, 2n ** 60n, 3n]) };
  for (let c = 0; c < 4; c++) columns[`c${c}`] = Float64Array.from([c, c + 0.5, NaN]);
  const table = tableFromArrays(columns);
  const b = arrowTableBundle(table, { maxRows: 2, maxCols: 3 });
  const html = b["text/html"] as string;
  assert.equal((html.match(/<tr><th>\d+<\/th>/g) ?? []).length, 2);
  assert.equal((html.match(/<th>c\d<br>/g) ?? []).length, 2);
  assert.match(html, /3 rows × 5 columns \(showing first 2 rows, first 3 columns\)/);
  const resource = b[DATARESOURCE_MIME] as { schema: { fields: { name: string; type: string }[] }; data: Record<string, unknown>[] };
  assert.deepEqual(resource.schema.fields.slice(0, 2), [{ name: "big", type: "integer" }, { name: "c0", type: "number" }]);
  assert.deepEqual(resource.data.map((r) => r.big), [1, "1152921504606846976", 3]);
  assert.equal(resource.data[2].c0, "NaN");
  assert.match(b["text/plain"], /^3 rows × 5 columns/);
  assert.equal(bundleOf(table).data["text/html"], arrowTableBundle(table)["text/html"], "the kernel shows Arrow tables as tables");
});

test("tensorBundle and htmlBundle", () => {
  const t = tensorBundle({ shape: [2, 2], dtype: "F32", values: Float32Array.from([1, 2, 3, 4]) }, "x");
  assert.match(t["text/plain"], /^x shape=\[2, 2\] dtype=F32 min=1 max=4 mean=2\.5 std=1\.118/);
  assert.match(t["text/html"] as string, /<b>x<\/b>/);
  assert.deepEqual(htmlBundle("<p>a</p>", "a"), { "text/html": "<p>a</p>", "text/plain": "a" });
});

test("bundleOf: objects with Symbol.for('Jupyter.display'), plain values as text", () => {
  const custom = { [Symbol.for("Jupyter.display")]: () => ({ "text/markdown": "**m**" }) };
  assert.deepEqual(bundleOf(custom).data, { "text/plain": "{ [Symbol(Jupyter.display)]: [Function: [Jupyter.display]] }", "text/markdown": "**m**" });
  assert.deepEqual(bundleOf({ a: [1, 2] }).data, { "text/plain": "{ a: [ 1, 2 ] }" });
  assert.deepEqual(bundleOf("s").data, { "text/plain": "'s'" });
});
