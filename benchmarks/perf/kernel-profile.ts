// Time spent in each native kernel. When this module loads, it wraps every function of the addon object with a
// timer that runs only while a profile is open; native/index.ts binds the addon's functions when it loads, so this
// module must load first: import it before anything that imports the engine (benchmarks/perf/training.ts does,
// and a profile that saw no call says so). Calls are coarse (one per op over the whole batch), so the timers cost
// nothing measurable; time outside native calls is the JavaScript around them.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export interface KernelTime { kernel: string; calls: number; seconds: number }

type Fn = (...args: unknown[]) => unknown;

const addon = createRequire(import.meta.url)(fileURLToPath(new URL("../../native/build/Release/m1native.node", import.meta.url))) as Record<string, unknown>;
let open: Map<string, KernelTime> | null = null;

for (const [name, f] of Object.entries(addon)) {
  if (typeof f !== "function" || /^[A-Z]/.test(name)) continue; // classes (DecoderLayer, Decoder) stay as they are
  const original = f as Fn;
  addon[name] = (...args: unknown[]) => {
    if (!open) return original(...args);
    const t = performance.now();
    try {
      return original(...args);
    } finally {
      const time = open.get(name) ?? { kernel: name, calls: 0, seconds: 0 };
      time.calls++;
      time.seconds += (performance.now() - t) / 1000;
      open.set(name, time);
    }
  };
}

export class KernelProfile {
  /** Starts timing every kernel. */
  open(): void {
    open = new Map();
  }

  /** Stops timing; returns the kernels that ran, longest first. */
  close(): KernelTime[] {
    const times = [...(open ?? new Map<string, KernelTime>()).values()].sort((a, b) => b.seconds - a.seconds);
    open = null;
    if (times.length === 0) throw new Error("kernel profile: no native call was timed (import benchmarks/perf/kernel-profile.ts before the engine)");
    return times;
  }
}
