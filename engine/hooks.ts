import { AsyncLocalStorage } from "node:async_hooks";
import { Tensor } from "./tensor.ts";
import { InputError } from "./errors.ts";

/** Where a hook fired: prefill of a prompt chunk or one decode step, at absolute token positions. */
export interface HookContext {
  readonly name: string;
  readonly phase: "prefill" | "decode";
  /** absolute position of the first token of this forward call */
  readonly position: number;
  /** number of tokens in this forward call */
  readonly tokens: number;
  readonly layer: number | null;
  /** In a call that packs several sequences: the rows of each (its value's first axis is their concatenation). */
  readonly sequences?: readonly SequenceRows[];
  /** In such a call, for a hook that fires once per sequence (attention internals, the lightning state): which. */
  readonly sequence?: number;
}

/** Where one sequence of a packed forward call lies in its rows, and its absolute position. */
export interface SequenceRows {
  readonly start: number;
  readonly tokens: number;
  readonly position: number;
}

/** A hook reads an activation, and may return a replacement of the same shape and dtype. */
export type HookFn = (value: Tensor, ctx: HookContext) => Tensor | void;

/** Which hook names a hook (or an activation cache) applies to. */
export type HookFilter = string | RegExp | ((name: string) => boolean) | readonly string[];

export function matchesFilter(filter: HookFilter, name: string): boolean {
  if (typeof filter === "string") return filter === name;
  if (filter instanceof RegExp) return filter.test(name);
  if (typeof filter === "function") return filter(name);
  return filter.includes(name);
}

interface Registration {
  readonly filter: HookFilter;
  readonly fn: HookFn;
}

/** The hooks `with` adds for one async call tree: its own and those of the `with` calls around it. */
interface Scope {
  readonly registrations: readonly Registration[];
  readonly wantCache: Map<string, boolean>;
  /** the model-wide registrations' version the cache was filled at */
  version: number;
}

/**
 * The hooks of one model. The model asks `wants(name)` before building a hook's value, so
 * with no hooks registered a forward pass does no extra work at all.
 *
 * `add` registers a hook for every forward call of the model. `with(hooks, body)` registers hooks for the forward
 * calls made inside `body` only (its async call tree, through AsyncLocalStorage): two analyses that run at once on
 * one model — a patching sweep beside a cache run under Promise.all — each see their own hooks and never the
 * other's. Model-wide hooks fire first, then scoped ones from the outermost `with` in.
 */
export class HookSet {
  private readonly registrations = new Set<Registration>();
  private readonly wantCache = new Map<string, boolean>();
  private version = 0;
  private readonly scope = new AsyncLocalStorage<Scope>();

  /** the number of hooks a forward call made here would run */
  get size(): number {
    return this.registrations.size + (this.scope.getStore()?.registrations.length ?? 0);
  }

  /** Registers a hook; the returned function removes it. Hooks run synchronously inside forward: an async function
   *  is refused here, since forward could not wait for it. */
  add(filter: HookFilter, fn: HookFn): () => void {
    const reg = registration("hooks.add", filter, fn);
    this.registrations.add(reg);
    this.changed();
    return () => {
      this.registrations.delete(reg);
      this.changed();
    };
  }

  /** Removes the registrations of exactly this filter and function. */
  removeFn(filter: HookFilter, fn: HookFn): void {
    for (const reg of this.registrations) if (reg.filter === filter && reg.fn === fn) this.registrations.delete(reg);
    this.changed();
  }

  /** Runs `body` with extra hooks that apply to the forward calls inside it only. */
  async with<T>(hooks: ReadonlyArray<readonly [HookFilter, HookFn]>, body: () => Promise<T>): Promise<T> {
    const added = hooks.map(([filter, fn]) => registration("hooks.with", filter, fn));
    const outer = this.scope.getStore()?.registrations ?? [];
    return this.scope.run({ registrations: [...outer, ...added], wantCache: new Map(), version: this.version }, body);
  }

  wants(name: string): boolean {
    const scope = this.scope.getStore();
    if (this.registrations.size === 0 && !scope?.registrations.length) return false;
    const cache = scope ? this.scopeCache(scope) : this.wantCache;
    let hit = cache.get(name);
    if (hit === undefined) {
      hit = false;
      for (const reg of this.active(scope)) if (matchesFilter(reg.filter, name)) hit = true;
      cache.set(name, hit);
    }
    return hit;
  }

  /** Fires every matching hook in registration order; returns the (possibly replaced) value. */
  fire(value: Tensor, ctx: HookContext): Tensor {
    let current = value;
    for (const reg of this.active(this.scope.getStore())) {
      if (!matchesFilter(reg.filter, ctx.name)) continue;
      const replaced: unknown = reg.fn(current, ctx);
      if (isThenable(replaced)) {
        replaced.then(undefined, () => {}); // its outcome can no longer matter: never leave it to reject unhandled
        throw new InputError(`hook "${ctx.name}" returned a Promise, but hooks run synchronously inside forward: return a Tensor or nothing`);
      }
      if (replaced !== undefined && replaced !== current) {
        checkReplacement(current, replaced as Tensor, ctx.name);
        current = replaced as Tensor;
      }
    }
    return current;
  }

  private *active(scope: Scope | undefined): Iterable<Registration> {
    yield* this.registrations;
    if (scope) yield* scope.registrations;
  }

  private changed(): void {
    this.version++;
    this.wantCache.clear();
  }

  private scopeCache(scope: Scope): Map<string, boolean> {
    if (scope.version !== this.version) {
      scope.wantCache.clear();
      scope.version = this.version;
    }
    return scope.wantCache;
  }
}

function registration(what: string, filter: HookFilter, fn: HookFn): Registration {
  const isFilter = typeof filter === "string" || filter instanceof RegExp || typeof filter === "function" ||
    (Array.isArray(filter) && filter.every((f) => typeof f === "string"));
  if (!isFilter) throw new InputError(`${what}: filter must be a hook name, a RegExp, a predicate or an array of names, got ${describe(filter)}`);
  if (typeof fn !== "function") throw new InputError(`${what}: fn must be a function (value, ctx) => Tensor | void, got ${describe(fn)}`);
  if (fn instanceof AsyncFunction) {
    throw new InputError(
      `${what}(${describe(filter)}): the hook is an async function, but hooks run synchronously inside forward; ` +
        "edit or return the tensor synchronously (record it and do async work after forward)",
    );
  }
  return { filter, fn };
}

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as FunctionConstructor;

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof (x as PromiseLike<unknown> | null)?.then === "function";
}

function describe(x: unknown): string {
  return typeof x === "string" ? JSON.stringify(x) : x === null ? "null" : Array.isArray(x) ? "an array" : typeof x === "function" ? "a function" : typeof x;
}

export function checkReplacement(old: Tensor, replacement: Tensor, name: string): void {
  if (!(replacement instanceof Tensor)) {
    throw new InputError(`hook "${name}" returned ${typeof replacement}, expected a Tensor or nothing`);
  }
  const same = old.dtype === replacement.dtype && old.shape.length === replacement.shape.length &&
    old.shape.every((d, i) => d === replacement.shape[i]);
  if (!same) {
    throw new InputError(
      `hook "${name}" returned ${replacement.dtype}[${replacement.shape.join(", ")}], expected ${old.dtype}[${old.shape.join(", ")}]`,
    );
  }
}

/** The hook names (docs/architecture.md §4) for a layer stack, in the order they fire. */
export function hookNames(layerTypes: readonly ("lightning" | "softmax")[]): string[] {
  const names = ["embed"];
  layerTypes.forEach((type, l) => {
    const b = `blocks.${l}`;
    names.push(`${b}.hook_resid_pre`, `${b}.ln1.hook_normalized`);
    if (type === "lightning") {
      for (const h of ["hook_q", "hook_k", "hook_v", "hook_state", "hook_o", "hook_gate"]) names.push(`${b}.lightning.${h}`);
    } else {
      for (const h of ["hook_q", "hook_k", "hook_v", "hook_scores", "hook_pattern", "hook_z"]) names.push(`${b}.attn.${h}`);
    }
    names.push(`${b}.hook_attn_out`, `${b}.hook_resid_mid`, `${b}.ln2.hook_normalized`);
    for (const h of ["hook_router_logits", "hook_topk_idx", "hook_topk_weights", "hook_expert_out"]) names.push(`${b}.moe.${h}`);
    names.push(`${b}.hook_mlp_out`, `${b}.hook_resid_post`);
  });
  names.push("ln_final.hook_normalized", "logits");
  return names;
}

/**
 * A hook's value split by sequence: one piece for a hook that fires per sequence (or in a call of one sequence),
 * else the rows of each packed sequence (the final norm and logits of a call asking for last-position logits have
 * one row per sequence). Returns [sequence index, value] pairs.
 */
export function bySequence(value: Tensor, ctx: HookContext): [number, Tensor][] {
  if (!ctx.sequences) return [[ctx.sequence ?? 0, value]];
  const rowWidth = value.numel / (value.shape[0] || 1);
  const lastRows = value.shape[0] === ctx.sequences.length && value.shape[0] !== ctx.tokens;
  return ctx.sequences.map((seq, i) => {
    const [start, rows] = lastRows ? [i, 1] : [seq.start, seq.tokens];
    const data = value.data.slice(start * rowWidth, (start + rows) * rowWidth);
    return [i, new Tensor(value.dtype, [rows, ...value.shape.slice(1)], data)];
  });
}

/** Activations recorded by name during forward calls (copies, so later in-place work cannot change them). */
export class ActivationCache {
  private readonly store = new Map<string, Tensor[]>();

  constructor(readonly filter: HookFilter) {}

  record(value: Tensor, ctx: HookContext): void {
    const copy = new Tensor(value.dtype, value.shape, value.data.slice());
    const list = this.store.get(ctx.name);
    if (list) list.push(copy);
    else this.store.set(ctx.name, [copy]);
  }

  names(): string[] {
    return [...this.store.keys()];
  }

  has(name: string): boolean {
    return this.store.has(name);
  }

  /** The value recorded at the name's last firing. */
  get(name: string): Tensor {
    const list = this.store.get(name);
    if (!list) throw new InputError(`activation "${name}" was not recorded (recorded: ${this.names().slice(0, 8).join(", ")}${this.store.size > 8 ? ", ..." : ""})`);
    return list[list.length - 1];
  }

  /** Every recorded value of the name, one per forward call (prefill, then each decode step). */
  all(name: string): Tensor[] {
    return this.store.get(name) ?? [];
  }
}
