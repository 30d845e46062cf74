// Evaluates an Architecture's formulas with mathjs: FLOPs per generated token F(t), FLOPs to generate G tokens,
// and decoding memory. F is linear in t (attention reads every cached position once), so the sum over a
// generation has the closed form Σ_{t=P+1}^{P+G} F(t) = G·F(0) + F'·(G·P + G(G+1)/2).
import { parse, derivative, simplify, type MathNode } from "mathjs";
import type { Architecture } from "./architectures.ts";

export interface ShownFormula { name: string; text: string; tex: string; meaning: string }

export class CostModel {
  /** F(t): FLOPs of the token that attends to t positions */
  readonly perToken: MathNode;
  /** dF/dt: FLOPs added per extra position attended */
  readonly slope: MathNode;
  /** F(0): FLOPs independent of the context */
  readonly constant: MathNode;
  private readonly scope: Record<string, number>;

  constructor(readonly arch: Architecture) {
    this.scope = Object.fromEntries(Object.entries(arch.symbols).map(([k, s]) => [k, s.value]));
    this.perToken = parse(arch.decode.map((term) => `(${term.formula})`).join(" + "));
    this.slope = simplify(derivative(this.perToken, "t"));
    this.constant = simplify(this.perToken.transform((n) => ("name" in n && n.name === "t" ? parse("0") : n)));
    const curvature = derivative(this.slope, "t").evaluate(this.scope);
    if (curvature !== 0) throw new Error(`${arch.name}: F(t) is not linear in t; the closed-form sum does not apply`);
  }

  get name(): string {
    return this.arch.name;
  }

  /** FLOPs of one generated token attending to t positions. */
  tokenFlops(t: number): number {
    return this.perToken.evaluate({ ...this.scope, t });
  }

  /** FLOPs of each term of F(t), by term name. */
  termFlops(t: number): Record<string, number> {
    return Object.fromEntries(this.arch.decode.map((term) => [term.name, parse(term.formula).evaluate({ ...this.scope, t })]));
  }

  /** FLOPs to generate G tokens after a prompt of P tokens (the prompt's prefill not counted). */
  generationFlops(G: number, P = 0): number {
    const c: number = this.constant.evaluate(this.scope);
    const a: number = this.slope.evaluate(this.scope);
    return G * c + a * (G * P + (G * (G + 1)) / 2);
  }

  /** Decoding memory after `tokens` positions: the growing cache and the constant state, in bytes. */
  memory(tokens: number): { cacheBytes: number; stateBytes: number; total: number } {
    const cacheBytes = tokens * parse(this.arch.cacheBytesPerToken.formula).evaluate(this.scope);
    const stateBytes = parse(this.arch.stateBytes.formula).evaluate(this.scope);
    return { cacheBytes, stateBytes, total: cacheBytes + stateBytes };
  }

  /** Every formula in plain text and TeX, the derived ones (F(t), F(0), dF/dt) included. */
  formulas(): ShownFormula[] {
    const shown = (name: string, node: MathNode, meaning: string) => ({ name, text: node.toString(), tex: node.toTex(), meaning });
    return [
      ...this.arch.decode.map((term) => shown(term.name, parse(term.formula), term.meaning)),
      shown("F(t)", this.perToken, "FLOPs per generated token attending to t positions"),
      shown("F(0)", this.constant, "context-independent FLOPs per token"),
      shown("dF/dt", this.slope, "FLOPs per attended position"),
      shown(this.arch.cacheBytesPerToken.name, parse(this.arch.cacheBytesPerToken.formula), this.arch.cacheBytesPerToken.meaning),
      shown(this.arch.stateBytes.name, parse(this.arch.stateBytes.formula), this.arch.stateBytes.meaning),
    ];
  }
}
