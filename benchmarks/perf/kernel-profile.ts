// Time spent in each native kernel: every function of the addon object (the one native/index.ts and
// native/backward.ts call through) is wrapped with a timer while a profile is open. Calls are coarse (one per op
// over the whole batch), so the timers cost nothing measurable; time outside native calls is the JavaScript around
// them (hooks, slicing, the optimiser's bookkeeping).
import { createRequire } from "node:module";
import { addonPath } from "../../native/index.ts";

export interface KernelTime { kernel: string; calls: number; seconds: number }

type Fn = (...args: unknown[]) => unknown;

export class KernelProfile {
  private readonly addon = createRequire(import.meta.url)(addonPath) as Record<string, unknown>;
  private readonly originals = new Map<string, Fn>();
  private readonly times = new Map<string, KernelTime>();

  /** Starts timing every kernel (classes, named with a capital, are left alone). */
  open(): void {
    for (const [name, f] of Object.entries(this.addon)) {
      if (typeof f !== "function" || /^[A-Z]/.test(name) || this.originals.has(name)) continue;
      const original = f as Fn;
      const time: KernelTime = this.times.get(name) ?? { kernel: name, calls: 0, seconds: 0 };
      this.times.set(name, time);
      this.originals.set(name, original);
      this.addon[name] = (...args: unknown[]) => {
        const t = performance.now();
        try {
          return original(...args);
        } finally {
          time.calls++;
          time.seconds += (performance.now() - t) / 1000;
        }
      };
    }
  }

  /** Stops timing; returns the kernels that ran, longest first. */
  close(): KernelTime[] {
    for (const [name, f] of this.originals) this.addon[name] = f;
    this.originals.clear();
    return [...this.times.values()].filter((t) => t.calls > 0).sort((a, b) => b.seconds - a.seconds);
  }
}
