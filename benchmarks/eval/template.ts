// Prompt and target templates: Jinja (as lm-evaluation-harness and chat templates use), rendered per record.
import { Template } from "@huggingface/jinja";
import { InputError } from "../../engine/errors.ts";

export type Doc = Record<string, unknown>;

export function compileTemplate(source: string, where: string): (record: Doc) => string {
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new InputError(`${where}: cannot parse template ${JSON.stringify(source)} (${(e as Error).message})`);
  }
  return (record) => {
    try {
      return template.render(record);
    } catch (e) {
      throw new InputError(`${where}: template ${JSON.stringify(source)} failed on a record (${(e as Error).message})`);
    }
  };
}
