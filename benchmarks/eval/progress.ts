// Progress of a run: a redrawn bar on a terminal (stderr when it is a TTY), plain lines at every tenth
// otherwise, and a notebook bar published as a MIME bundle through a display-update callback.
import { DISPLAY, escapeHtml, type MimeBundle } from "../../engine/display.ts";

export interface ProgressState {
  label: string;
  total: number;
  /** finished samples, cached ones included */
  done: number;
  cached: number;
  failed: number;
  meanScore: number | null;
  elapsedMs: number;
}

export interface ProgressSink {
  update(state: ProgressState): void;
  finish(state: ProgressState): void;
}

export function describe(s: ProgressState): string {
  const parts = [`${s.label}: ${s.done}/${s.total}`];
  if (s.cached) parts.push(`${s.cached} cached`);
  if (s.failed) parts.push(`${s.failed} failed`);
  if (s.meanScore !== null) parts.push(`mean ${s.meanScore.toFixed(3)}`);
  const computed = s.done - s.cached;
  if (computed > 0 && s.done < s.total) parts.push(`ETA ${clock((s.elapsedMs / computed) * (s.total - s.done))}`);
  parts.push(clock(s.elapsedMs));
  return parts.join(" · ");
}

const clock = (ms: number) => {
  const t = Math.round(ms / 1000);
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
};

/** A bar redrawn in place on a TTY (at most 10 times a second); on a pipe, one line per tenth of the run. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  let lastDraw = 0;
  let lastTenth = -1;
  const bar = (s: ProgressState) => {
    const width = 24;
    const filled = s.total ? Math.round((width * s.done) / s.total) : width;
    return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${describe(s)}`;
  };
  return {
    update(s) {
      if (stream.isTTY) {
        const now = Date.now();
        if (now - lastDraw < 100) return;
        lastDraw = now;
        stream.write(`\r${bar(s).slice(0, (stream.columns ?? 120) - 1)}\x1b[K`);
        return;
      }
      const tenth = s.total ? Math.floor((10 * s.done) / s.total) : 10;
      if (tenth > lastTenth && s.done < s.total) {
        lastTenth = tenth;
        stream.write(describe(s) + "\n");
      }
    },
    finish(s) {
      stream.write(stream.isTTY ? `\r${bar(s)}\x1b[K\n` : describe(s) + "\n");
    },
  };
}

/** What a notebook kernel's `display(value)` returns: a handle that replaces what it showed. */
export interface DisplayHandleLike { update(value: unknown): void }

/**
 * A notebook bar. Give it the kernel's `display` function (`new NotebookProgress(display)`): the first update
 * shows the bar, later ones replace it in place (update_display_data), at most 5 times a second.
 */
export class NotebookProgress implements ProgressSink {
  private last: ProgressState | null = null;
  private lastPublish = 0;
  private handle: DisplayHandleLike | null = null;

  constructor(private readonly show: (value: unknown) => DisplayHandleLike) {}

  update(s: ProgressState): void {
    this.last = s;
    const now = Date.now();
    if (now - this.lastPublish < 200) return;
    this.lastPublish = now;
    this.publish();
  }

  finish(s: ProgressState): void {
    this.last = s;
    this.publish();
  }

  private publish(): void {
    if (this.handle) this.handle.update(this);
    else this.handle = this.show(this);
  }

  [DISPLAY](): MimeBundle {
    const s = this.last;
    if (!s) return { "text/plain": "(not started)" };
    const text = describe(s);
    return {
      "text/plain": text,
      "text/html": `<div><progress value="${s.done}" max="${s.total}" style="width:24em"></progress> <span>${escapeHtml(text)}</span></div>`,
    };
  }
}
