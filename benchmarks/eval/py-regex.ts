// Python regular expressions (as lm-evaluation-harness task files write them) as JavaScript RegExps.
// Leading inline flags such as "(?s)" or "(?i)" become RegExp flags; everything else is passed through,
// which covers the simple patterns these files use.
import { InputError } from "../../engine/errors.ts";

const INLINE = /^\(\?([aiLmsux]+)\)/;

export function pythonRegex(pattern: string, flags = ""): RegExp {
  let body = pattern;
  const set = new Set(flags);
  for (let m = INLINE.exec(body); m; m = INLINE.exec(body)) {
    for (const f of m[1]) if ("ims".includes(f)) set.add(f);
    body = body.slice(m[0].length);
  }
  set.add("u");
  try {
    return new RegExp(body, [...set].join(""));
  } catch {
    try {
      set.delete("u"); // Python accepts escapes such as "\-" that unicode mode rejects
      return new RegExp(body, [...set].join(""));
    } catch (e) {
      throw new InputError(`regular expression ${JSON.stringify(pattern)} is not supported: ${(e as Error).message}`);
    }
  }
}
