// Graders by name, as task files name them: {"type": "exact_match" | "math" | "multiple_choice" | "mrcr" | "retrieval", …options}.
import { InputError } from "../../../engine/errors.ts";
import type { Grader } from "../types.ts";
import { exactMatch } from "./exact.ts";
import { mathGrader } from "./math.ts";
import { multipleChoiceGrader } from "./choice.ts";
import { mrcrGrader } from "./mrcr.ts";
import { retrievalGrader } from "./retrieval.ts";

export const GRADER_TYPES = ["exact_match", "math", "multiple_choice", "mrcr", "retrieval"] as const;

export function graderFromSpec(spec: unknown, where: string): Grader {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw new InputError(`${where}: "grader" must be an object with a "type"`);
  const s = spec as Record<string, unknown>;
  const bool = (key: string) => {
    if (s[key] !== undefined && typeof s[key] !== "boolean") throw new InputError(`${where}: grader.${key} must be true or false`);
    return s[key] as boolean | undefined;
  };
  switch (s.type) {
    case "exact_match": {
      const regexes = s.regexes_to_ignore ?? [];
      if (!Array.isArray(regexes) || !regexes.every((r) => typeof r === "string")) throw new InputError(`${where}: grader.regexes_to_ignore must be a list of strings`);
      return exactMatch({ ignoreCase: bool("ignore_case"), ignorePunctuation: bool("ignore_punctuation"), regexesToIgnore: regexes });
    }
    case "math": {
      const timeout = s.timeout_ms ?? 5000;
      if (typeof timeout !== "number" || !(timeout > 0)) throw new InputError(`${where}: grader.timeout_ms must be a positive number`);
      return mathGrader({ timeoutMs: timeout });
    }
    case "multiple_choice":
      return multipleChoiceGrader();
    case "mrcr":
      return mrcrGrader();
    case "retrieval":
      return retrievalGrader();
    default:
      throw new InputError(`${where}: grader.type ${JSON.stringify(s.type)} is not one of ${GRADER_TYPES.join(", ")}`);
  }
}
