// Context-length bins: powers of two, labelled like "64K-128K" (OpenAI-MRCR reports by such bins).

export function lengthBin(tokens: number): string {
  const upper = 2 ** Math.max(0, Math.ceil(Math.log2(Math.max(1, tokens))));
  return `${short(upper / 2)}-${short(upper)}`;
}

/** Numeric order of bin labels made by lengthBin. */
export function binOrder(label: string): number {
  const [lower] = label.split("-");
  const unit = lower.endsWith("M") ? 2 ** 20 : lower.endsWith("K") ? 1024 : 1;
  return parseFloat(lower) * unit;
}

function short(n: number): string {
  if (n >= 2 ** 20) return `${n / 2 ** 20}M`;
  if (n >= 1024) return `${n / 1024}K`;
  return String(n);
}
