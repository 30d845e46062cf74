// Math answers: extraction (the last \boxed{…}, else the last number) and normalisation of LaTeX into an
// expression mathjs can parse (\frac, \sqrt, \cdot, ^{…}, \pi, thousands separators, units and $…$ removed).

/** Contents of the last \boxed{…} or \fbox{…} (nested braces respected), or null. */
export function extractBoxed(text: string): string | null {
  const boxed = text.lastIndexOf("\\boxed");
  const at = Math.max(boxed, text.lastIndexOf("\\fbox"));
  if (at < 0) return null;
  let i = at + (at === boxed ? "\\boxed" : "\\fbox").length;
  while (text[i] === " ") i++;
  if (text[i] !== "{") {
    const m = /^[^\s$]+/.exec(text.slice(i)); // "\boxed 5"
    return m ? m[0] : null;
  }
  const body = bracedAt(text, i);
  return body === null ? null : body.content;
}

const NUMBER = /-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:\/\d+)?|-?\.\d+/g;

export function lastNumber(text: string): string | null {
  return [...text.matchAll(NUMBER)].at(-1)?.[0] ?? null;
}

export function extractMathAnswer(text: string): string | null {
  return extractBoxed(text) ?? lastNumber(text);
}

/** The brace group starting at text[open] === "{": its content and the index after its "}". */
function bracedAt(text: string, open: number): { content: string; end: number } | null {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return { content: text.slice(open + 1, i), end: i + 1 };
  }
  return null;
}

/** A LaTeX command's argument at `i`: a brace group or a single character (as in \frac12). */
function argumentAt(text: string, i: number): { content: string; end: number } | null {
  while (text[i] === " ") i++;
  if (i >= text.length) return null;
  if (text[i] === "{") return bracedAt(text, i);
  return { content: text[i], end: i + 1 };
}

/** Rewrites every \name{a}{b}… (arity args) with `f`, innermost arguments converted first. */
function rewriteCommand(text: string, name: string, arity: number, f: (args: string[]) => string): string {
  let out = "";
  let i = 0;
  for (;;) {
    const at = text.indexOf(name, i);
    if (at < 0 || /[A-Za-z]/.test(text[at + name.length] ?? "")) {
      if (at < 0) return out + text.slice(i);
      out += text.slice(i, at + name.length);
      i = at + name.length;
      continue;
    }
    const args: string[] = [];
    let end = at + name.length;
    for (let k = 0; k < arity; k++) {
      const arg = argumentAt(text, end);
      if (!arg) break;
      args.push(rewriteCommand(arg.content, name, arity, f));
      end = arg.end;
    }
    if (args.length < arity) return out + text.slice(i);
    out += text.slice(i, at) + f(args);
    i = end;
  }
}

/** Normalises a math answer to a canonical string, parseable by mathjs where the answer is an expression. */
export function normalizeMathAnswer(answer: string): string {
  let s = answer.trim();
  s = s.replace(/^\$+|\$+$/g, "").replace(/^\\\(|\\\)$/g, "").replace(/^\\\[|\\\]$/g, "");
  s = s.replace(/\\(?:left|right|displaystyle)\b/g, "").replace(/\\[!,;: ]/g, "").replace(/~/g, " ");
  s = s.replace(/\\[dt]frac/g, "\\frac");
  s = s.replace(/(\d)\s*\\(?:text|mbox|mathrm)\{[^}]*\}/g, "$1"); // units after a number
  s = s.replace(/\\(?:text|mbox|mathrm)\{([^}]*)\}/g, "$1");
  s = s.replace(/\^\s*\{?\\circ\}?|°|\\%|%|\\\$|\$/g, "");
  s = s.replace(/^[a-zA-Z]\s*=\s*/, ""); // "x = 5"
  s = s.replace(/\.$/, "").trim();
  while (/(\d),(\d{3})(?!\d)/.test(s)) s = s.replace(/(\d),(\d{3})(?!\d)/, "$1$2");
  s = rewriteCommand(s, "\\frac", 2, ([a, b]) => `((${a})/(${b}))`);
  s = s.replace(/\\sqrt\s*\[([^\]]+)\]/g, "\\nthroot{$1}");
  s = rewriteCommand(s, "\\nthroot", 2, ([n, x]) => `nthRoot(${x}, ${n})`);
  s = rewriteCommand(s, "\\sqrt", 1, ([x]) => `sqrt(${x})`);
  s = s.replace(/\\(?:cdot|times)/g, "*").replace(/\\div/g, "/").replace(/\\pi\b/g, "pi").replace(/\\infty\b/g, "Infinity");
  s = s.replace(/\{/g, "(").replace(/\}/g, ")");
  return s.replace(/\s+/g, " ").trim();
}
