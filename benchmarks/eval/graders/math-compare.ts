// Math answer equivalence with mathjs: equal after normalisation, else numerically equal (relative 1e-6), else
// symbolically equal (simplify(a - b) is 0), else equal at random points of their free variables. Tuples and
// solution lists ("1, 2") compare element by element, in any order. Can be slow: run it under a timeout.
import * as math from "mathjs";
import { normalizeMathAnswer } from "./math-normalize.ts";

export type EquivalenceKind = "string" | "numeric" | "symbolic" | "sampled" | "different" | "unparseable";
export interface Equivalence { equivalent: boolean; how: EquivalenceKind }

const TOLERANCE = 1e-6;

export function mathEquivalent(answer: string, target: string): Equivalence {
  const a = normalizeMathAnswer(answer);
  const b = normalizeMathAnswer(target);
  if (a === b || a.toLowerCase() === b.toLowerCase()) return { equivalent: true, how: "string" };
  const as = elements(a);
  const bs = elements(b);
  if (as.length !== bs.length) return { equivalent: false, how: "different" };
  if (as.length === 1) return compare(as[0], bs[0]);
  const unused = [...bs];
  let how: EquivalenceKind = "string";
  for (const x of as) {
    const k = unused.findIndex((y) => compare(x, y).equivalent);
    if (k < 0) return { equivalent: false, how: "different" };
    how = compare(x, unused[k]).how;
    unused.splice(k, 1);
  }
  return { equivalent: true, how };
}

/** Top-level comma-separated parts, without one enclosing pair of brackets. */
function elements(s: string): string[] {
  const inner = /^[([{].*[)\]}]$/.test(s) && balanced(s.slice(1, -1)) ? s.slice(1, -1) : s;
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) depth--;
    else if (c === "," && depth === 0) {
      parts.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(inner.slice(start).trim());
  return parts.length > 1 ? parts : [s];
}

function balanced(s: string): boolean {
  let depth = 0;
  for (const c of s) {
    if ("([{".includes(c)) depth++;
    else if (")]}".includes(c) && --depth < 0) return false;
  }
  return depth === 0;
}

function compare(x: string, y: string): Equivalence {
  if (x === y) return { equivalent: true, how: "string" };
  let nx: math.MathNode;
  let ny: math.MathNode;
  try {
    nx = math.parse(x);
    ny = math.parse(y);
  } catch {
    return { equivalent: false, how: "unparseable" };
  }
  const vars = [...new Set([...variables(nx), ...variables(ny)])];
  if (vars.length === 0) {
    const vx = numberOf(nx, {});
    const vy = numberOf(ny, {});
    if (vx === null || vy === null) return { equivalent: false, how: "unparseable" };
    return { equivalent: close(vx, vy), how: close(vx, vy) ? "numeric" : "different" };
  }
  try {
    const diff = math.simplify(new math.OperatorNode("-", "subtract", [nx, ny]));
    if (math.isConstantNode(diff) && Number(diff.value) === 0) return { equivalent: true, how: "symbolic" };
  } catch {
    // fall through to sampling
  }
  for (let trial = 0; trial < 5; trial++) {
    const scope = Object.fromEntries(vars.map((v, k) => [v, 0.37 + 1.13 * trial + 0.71 * k]));
    const vx = numberOf(nx, scope);
    const vy = numberOf(ny, scope);
    if (vx === null || vy === null || !close(vx, vy)) return { equivalent: false, how: "different" };
  }
  return { equivalent: true, how: "sampled" };
}

/** Free variables: symbols that are neither mathjs constants nor functions (pi, e, sqrt … are not). */
function variables(node: math.MathNode): string[] {
  const names = node.filter((n) => math.isSymbolNode(n)).map((n) => (n as math.SymbolNode).name);
  return names.filter((name) => !(name in math));
}

function numberOf(node: math.MathNode, scope: Record<string, number>): number | null {
  try {
    const v = node.evaluate(scope);
    return typeof v === "number" && !Number.isNaN(v) ? v : null;
  } catch {
    return null;
  }
}

function close(x: number, y: number): boolean {
  if (!Number.isFinite(x) || !Number.isFinite(y)) return x === y;
  return Math.abs(x - y) <= TOLERANCE * Math.max(1, Math.abs(x), Math.abs(y));
}
