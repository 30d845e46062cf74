// A task defined by a JSON spec beside a JSONL file of records. Spec fields (templates are Jinja over a record):
//   name, description?, items (JSONL path, relative to the spec), target (template),
//   one of: prompt (template, sent as raw text) | chat (template, sent as one user message) | messages_field (a
//   record field holding a chat, as a list or a JSON string, as in OpenAI-MRCR),
//   id? (template; default the line number), group? (template, or {"length_bin": template, "scale": n} for
//   power-of-two bins of a length divided by scale), meta? ({key: template | {"field": name}}),
//   grader ({"type": …}), generation? ({"max_tokens": n, "stop": [...]}).
import fs from "node:fs";
import path from "node:path";
import { InputError } from "../../engine/errors.ts";
import type { ChatMessage } from "../../engine/tokenizer.ts";
import type { EvalItem, JsonValue, Prompt, Task } from "./types.ts";
import { compileTemplate, type Doc } from "./template.ts";
import { readJsonl } from "./jsonl.ts";
import { graderFromSpec } from "./graders/index.ts";
import { lengthBin, binOrder } from "./bins.ts";

export function loadTaskFile(file: string, options: { limit?: number } = {}): Task {
  let spec: Record<string, unknown>;
  try {
    spec = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new InputError(`${file}: cannot read the task spec (${(e as Error).message})`);
  }
  const where = file;
  const str = (key: string, required = true): string | undefined => {
    const v = spec[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== "string" || v === "") throw new InputError(`${where}: field "${key}" must be a non-empty string`);
    return v;
  };
  const name = str("name")!;
  const records = readJsonl(path.resolve(path.dirname(file), str("items")!)).slice(0, options.limit);
  const prompt = promptBuilder(spec, where);
  const target = compileTemplate(str("target")!, `${where} target`);
  const id = spec.id === undefined ? null : compileTemplate(str("id")!, `${where} id`);
  const group = groupBuilder(spec.group, where);
  const meta = metaBuilder(spec.meta, where);
  const generation = (spec.generation ?? {}) as Record<string, unknown>;
  const maxTokens = generation.max_tokens ?? 256;
  if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) throw new InputError(`${where}: generation.max_tokens must be a positive integer`);
  const stop = generation.stop ?? [];
  if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string")) throw new InputError(`${where}: generation.stop must be a list of strings`);

  const items: EvalItem[] = records.map((r, i) => ({
    id: id ? id(r) : String(i),
    prompt: prompt(r, i),
    target: target(r),
    ...(group ? { group: group(r) } : {}),
    ...(meta ? { meta: meta(r) } : {}),
  }));
  const ids = new Set(items.map((x) => x.id));
  if (ids.size !== items.length) throw new InputError(`${where}: item ids are not unique (give an "id" template that is)`);
  const groups = group && typeof spec.group === "object" ? [...new Set(items.map((x) => x.group!))].sort((a, b) => binOrder(a) - binOrder(b)) : undefined;
  return {
    name,
    description: str("description", false) ?? `${name} (${file})`,
    items,
    grader: graderFromSpec(spec.grader, where),
    generation: { maxTokens: maxTokens as number, stop: stop as string[] },
    groups,
  };
}

function promptBuilder(spec: Record<string, unknown>, where: string): (r: Doc, i: number) => Prompt {
  const given = ["prompt", "chat", "messages_field"].filter((k) => spec[k] !== undefined);
  if (given.length !== 1) throw new InputError(`${where}: give exactly one of "prompt", "chat", "messages_field" (got ${given.join(", ") || "none"})`);
  if (typeof spec[given[0]] !== "string") throw new InputError(`${where}: field "${given[0]}" must be a string`);
  if (given[0] === "prompt") return compileTemplate(spec.prompt as string, `${where} prompt`);
  if (given[0] === "chat") {
    const render = compileTemplate(spec.chat as string, `${where} chat`);
    return (r) => [{ role: "user", content: render(r) }];
  }
  const field = spec.messages_field as string;
  return (r, i) => {
    let v = r[field];
    if (typeof v === "string") {
      try {
        v = JSON.parse(v);
      } catch {
        throw new InputError(`${where}: record ${i} field "${field}" is not a JSON list of messages`);
      }
    }
    if (!Array.isArray(v) || !v.every((m) => typeof m?.role === "string" && (typeof m.content === "string" || Array.isArray(m.content)))) {
      throw new InputError(`${where}: record ${i} field "${field}" must be a list of {role, content} messages`);
    }
    return v as ChatMessage[];
  };
}

function groupBuilder(group: unknown, where: string): ((r: Doc) => string) | null {
  if (group === undefined) return null;
  if (typeof group === "string") return compileTemplate(group, `${where} group`);
  const g = group as { length_bin?: unknown; scale?: unknown };
  if (typeof g?.length_bin !== "string") throw new InputError(`${where}: "group" must be a template or {"length_bin": template, "scale": number}`);
  const scale = g.scale ?? 1;
  if (typeof scale !== "number" || !(scale > 0)) throw new InputError(`${where}: group.scale must be a positive number`);
  const render = compileTemplate(g.length_bin, `${where} group.length_bin`);
  return (r) => {
    const n = Number(render(r));
    if (!Number.isFinite(n)) throw new InputError(`${where}: group.length_bin gave ${JSON.stringify(render(r))}, not a number`);
    return lengthBin(n / scale);
  };
}

function metaBuilder(meta: unknown, where: string): ((r: Doc) => Record<string, JsonValue>) | null {
  if (meta === undefined) return null;
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) throw new InputError(`${where}: "meta" must be an object`);
  const parts = Object.entries(meta).map(([key, v]) => {
    if (typeof v === "string") {
      const render = compileTemplate(v, `${where} meta.${key}`);
      return [key, (r: Doc) => render(r)] as const;
    }
    if (typeof v?.field === "string") return [key, (r: Doc) => (r[v.field] ?? null) as JsonValue] as const;
    throw new InputError(`${where}: meta.${key} must be a template or {"field": name}`);
  });
  return (r) => Object.fromEntries(parts.map(([key, f]) => [key, f(r)]));
}
