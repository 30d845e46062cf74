/**
 * The demo pair's task as RL problems: multi-digit addition in the scratchpad format of
 * engine/checkpoints/README.md ("<s> 4 8 2 1 + 9 3 7 5 = <think>", the sum's digits after "</think>").
 */
import { Rng } from "../sampling.ts";
import { InputError } from "../errors.ts";

export interface Problem {
  prompt: string;
  /** the exact answer (decimal digits) */
  answer: string;
  digits: number;
}

/** An n-digit operand (leading digit 1-9) from the generator. */
export function operand(rng: Rng, digits: number): string {
  if (!(Number.isInteger(digits) && digits >= 1)) throw new InputError(`digits must be an integer >= 1, got ${digits}`);
  let s = String(1 + Math.floor(rng.next() * 9));
  for (let i = 1; i < digits; i++) s += String(Math.floor(rng.next() * 10));
  return s;
}

export function randomOperands(rng: Rng, digits: number): [string, string] {
  return [operand(rng, digits), operand(rng, digits)];
}

export function additionPrompt(a: string, b: string): string {
  return `<s> ${a.split("").join(" ")} + ${b.split("").join(" ")} = <think>`;
}

export function additionProblem(a: string, b: string): Problem {
  return { prompt: additionPrompt(a, b), answer: (BigInt(a) + BigInt(b)).toString(), digits: Math.max(a.length, b.length) };
}

/** `count` problems whose operands both have a digit count drawn uniformly from `digits`. */
export function additionProblems(rng: Rng, digits: readonly number[], count: number): Problem[] {
  if (digits.length === 0) throw new InputError("additionProblems: no digit counts given");
  return Array.from({ length: count }, () => {
    const n = digits[Math.floor(rng.next() * digits.length)];
    return additionProblem(...randomOperands(rng, n));
  });
}

/** The operands of a problem's prompt. */
export function problemOperands(prompt: string): [string, string] {
  const m = /^<s> ([\d ]+) \+ ([\d ]+) = <think>$/.exec(prompt);
  if (!m) throw new InputError(`not an addition prompt: "${prompt}"`);
  return [m[1].replace(/ /g, ""), m[2].replace(/ /g, "")];
}

/**
 * A family of problems by its operands' digit counts, written "A" (both operands A digits) or "A+B" (one of A
 * digits, one of B, in random order): mixed lengths probe where the frontier lies between "solved" and "never".
 */
export function parseFamily(text: string): [number, number] {
  const m = /^\s*(\d+)(?:\+(\d+))?\s*$/.exec(text);
  const lengths: [number, number] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [0, 0];
  if (!(lengths[0] >= 1 && lengths[1] >= 1)) throw new InputError(`problem family "${text}": expected DIGITS or DIGITS+DIGITS, each >= 1 (e.g. 7 or 7+3)`);
  return lengths;
}

/** `count` problems of the family with operands of `lengths` digits (which operand is the longer one drawn too). */
export function familyProblems(rng: Rng, lengths: [number, number], count: number): Problem[] {
  return Array.from({ length: count }, () => {
    const [a, b] = [operand(rng, lengths[0]), operand(rng, lengths[1])];
    return rng.next() < 0.5 ? additionProblem(a, b) : additionProblem(b, a);
  });
}

/**
 * The demo pair's supervised target for a problem: the scratchpad (per digit position, least significant first:
 * digit of a, digit of b, carry in, sum digit, carry out, ",") inside the thought, then the sum and "</s>".
 */
export function scratchpadCompletion(a: string, b: string): string {
  const n = Math.max(a.length, b.length);
  const digit = (s: string, i: number) => (i < s.length ? Number(s[s.length - 1 - i]) : 0);
  const steps: string[] = [];
  let carry = 0;
  for (let i = 0; i < n; i++) {
    const x = digit(a, i), y = digit(b, i);
    const sum = x + y + carry;
    steps.push(`${x} ${y} ${carry} ${sum % 10} ${sum >= 10 ? 1 : 0} ,`);
    carry = sum >= 10 ? 1 : 0;
  }
  const answer = (BigInt(a) + BigInt(b)).toString().split("").join(" ");
  return ` ${steps.join(" ")} </think> ${answer} </s>`;
}
