/** A plotly figure that displays itself in notebooks (plotly JSON, an offline HTML fallback, and text). */
import { DISPLAY, plotlyBundle, type MimeBundle, type PlotlyFigure } from "./display.ts";

export class Figure implements PlotlyFigure {
  constructor(
    readonly data: Record<string, unknown>[],
    readonly layout: Record<string, unknown> = {},
    readonly title?: string,
  ) {}

  [DISPLAY](): MimeBundle {
    return plotlyBundle(this, { title: this.title });
  }

  toJSON(): PlotlyFigure {
    return { data: this.data, layout: { ...(this.title ? { title: { text: this.title } } : {}), ...this.layout } };
  }
}

/** A grid of heatmaps (one per panel) sharing one color scale, e.g. attention patterns per head. */
export function heatmapGrid(
  panels: { title: string; z: number[][]; x: string[]; y: string[] }[],
  options: { title: string; columns?: number; zmin?: number; zmax?: number; zmid?: number; colorscale?: string; colorbarTitle?: string },
): Figure {
  const columns = Math.min(options.columns ?? 4, panels.length);
  const rows = Math.ceil(panels.length / columns);
  const data = panels.map((p, i) => ({
    type: "heatmap",
    z: p.z,
    x: p.x,
    y: p.y,
    xaxis: `x${i + 1}`,
    yaxis: `y${i + 1}`,
    zmin: options.zmin,
    zmax: options.zmax,
    zmid: options.zmid,
    colorscale: options.colorscale ?? "Viridis",
    showscale: i === 0,
    colorbar: options.colorbarTitle ? { title: { text: options.colorbarTitle } } : undefined,
    hovertemplate: `${p.title}<br>%{y} → %{x}: %{z:.4f}<extra></extra>`,
  }));
  const layout: Record<string, unknown> = {
    grid: { rows, columns, pattern: "independent" },
    height: Math.max(320, rows * 300),
    annotations: panels.map((p, i) => ({
      text: p.title, showarrow: false, xref: `x${i + 1} domain`, yref: `y${i + 1} domain`, x: 0.5, y: 1.08, xanchor: "center",
    })),
  };
  panels.forEach((_, i) => {
    layout[`xaxis${i + 1}`] = { showticklabels: panels[i].x.length <= 48, tickangle: -60, automargin: true };
    // panels of a row share their rows (e.g. query positions): label them once, at the left, so they do not overlap
    layout[`yaxis${i + 1}`] = { autorange: "reversed", showticklabels: panels[i].y.length <= 48 && i % columns === 0, automargin: true };
  });
  return new Figure(data, layout, options.title);
}
