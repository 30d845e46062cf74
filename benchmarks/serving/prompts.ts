/** Prompt i of the serving benchmarks: a 6-digit addition for the demo pair, the same for every level and run. */
export function additionPrompt(i: number): string {
  const a = String(100000 + ((i * 7919) % 900000)).split("").join(" ");
  const b = String(100000 + ((i * 104729) % 900000)).split("").join(" ");
  return `<s> ${a} + ${b} = <think>`;
}
