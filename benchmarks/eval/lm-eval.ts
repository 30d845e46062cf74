// Imports a simple lm-evaluation-harness task YAML (output_type generate_until) over local JSONL records:
// doc_to_text / doc_to_target (Jinja or a field name), description, target and few-shot delimiters, few-shot
// examples taken in order from a second JSONL file, generation_kwargs (until, max_gen_toks), one filter
// pipeline of "regex" + "take_first", and the exact_match metric with its options. `include:` files are merged
// under the task's own keys. Anything else (custom !function code, other output types or metrics) is refused.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { InputError } from "../../engine/errors.ts";
import type { EvalItem, Grade, Grader, Task } from "./types.ts";
import { compileTemplate, type Doc } from "./template.ts";
import { readJsonl } from "./jsonl.ts";
import { normalizeExact, type ExactMatchOptions } from "./graders/exact.ts";
import { pythonRegex } from "./py-regex.ts";

export interface LmEvalOptions {
  /** JSONL of the evaluated split */
  data: string;
  /** JSONL to take few-shot examples from (first num_fewshot records), when the task uses any */
  fewshotData?: string;
  /** overrides the YAML's num_fewshot */
  numFewshot?: number;
  /** which filter pipeline of filter_list to use (default: the first) */
  filter?: string;
  limit?: number;
}

interface RegexFilter { name: string; regex: RegExp; groupSelect: number; fallback: string }

export function importLmEvalTask(yamlFile: string, options: LmEvalOptions): Task {
  const spec = readYaml(yamlFile);
  const where = yamlFile;
  if (spec.output_type !== "generate_until") throw new InputError(`${where}: output_type ${JSON.stringify(spec.output_type)} is not supported (only generate_until)`);
  const name = typeof spec.task === "string" ? spec.task : path.basename(yamlFile, path.extname(yamlFile));
  const docToText = docField(spec.doc_to_text, "doc_to_text", where);
  const docToTarget = docField(spec.doc_to_target, "doc_to_target", where);
  const description = optionalString(spec, "description", where) ?? "";
  const targetDelimiter = optionalString(spec, "target_delimiter", where) ?? " ";
  const fewshotDelimiter = optionalString(spec, "fewshot_delimiter", where) ?? "\n\n";
  const numFewshot = options.numFewshot ?? (spec.num_fewshot === undefined ? 0 : Number(spec.num_fewshot));
  if (!Number.isInteger(numFewshot) || numFewshot < 0) throw new InputError(`${where}: num_fewshot must be an integer >= 0`);
  let shots = "";
  if (numFewshot > 0) {
    if (!options.fewshotData) throw new InputError(`${where}: num_fewshot is ${numFewshot}: give fewshotData (a JSONL file), or numFewshot 0`);
    const examples = readJsonl(options.fewshotData).slice(0, numFewshot);
    if (examples.length < numFewshot) throw new InputError(`${options.fewshotData}: has ${examples.length} records, num_fewshot is ${numFewshot}`);
    shots = examples.map((ex) => docToText(ex) + targetDelimiter + docToTarget(ex)).join(fewshotDelimiter) + fewshotDelimiter;
  }
  const gen = (spec.generation_kwargs ?? {}) as Record<string, unknown>;
  const until = gen.until === undefined ? [] : [gen.until].flat();
  if (!until.every((s) => typeof s === "string")) throw new InputError(`${where}: generation_kwargs.until must be a string or a list of strings`);
  const maxTokens = gen.max_gen_toks ?? 256;
  if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) throw new InputError(`${where}: generation_kwargs.max_gen_toks must be a positive integer`);
  const filter = regexFilter(spec.filter_list, options.filter, where);
  const metric = exactMatchMetric(spec.metric_list, where);

  const items: EvalItem[] = readJsonl(options.data)
    .slice(0, options.limit)
    .map((doc, i) => ({ id: String(i), prompt: description + shots + docToText(doc), target: docToTarget(doc) }));
  return {
    name,
    description: `lm-evaluation-harness task ${name} (${yamlFile}), ${numFewshot}-shot, filter ${filter?.name ?? "none"}, exact_match`,
    items,
    grader: lmEvalGrader(filter, metric),
    generation: { maxTokens: maxTokens as number, stop: until as string[] },
  };
}

/** Applies the filter (if any) to the answer, then exact_match against the target. */
function lmEvalGrader(filter: RegexFilter | null, metric: ExactMatchOptions): Grader {
  return {
    name: `exact_match${filter ? `,${filter.name}` : ""}`,
    grade(answer: string, item: EvalItem): Grade {
      const extracted = filter ? applyFilter(filter, answer) : answer;
      return { score: normalizeExact(extracted, metric) === normalizeExact(item.target, metric) ? 1 : 0, extracted };
    },
  };
}

/** lm-evaluation-harness RegexFilter: findall, pick group_select (negative counts from the end), first non-empty group. */
export function applyFilter(filter: RegexFilter, text: string): string {
  const matches = [...text.matchAll(filter.regex)].map((m) => (m.length > 2 ? m.slice(1) : m.length === 2 ? (m[1] ?? "") : m[0]));
  if (matches.length === 0) return filter.fallback;
  const k = filter.groupSelect < 0 ? matches.length + filter.groupSelect : filter.groupSelect;
  let match = matches[k];
  if (match === undefined) return filter.fallback;
  if (Array.isArray(match)) match = match.find((g) => g) ?? filter.fallback;
  return match.trim();
}

function regexFilter(list: unknown, wanted: string | undefined, where: string): RegexFilter | null {
  if (list === undefined) {
    if (wanted) throw new InputError(`${where}: has no filter_list; filter "${wanted}" does not exist`);
    return null;
  }
  if (!Array.isArray(list) || list.length === 0) throw new InputError(`${where}: filter_list must be a non-empty list`);
  const entry = wanted ? list.find((f) => f?.name === wanted) : list[0];
  if (!entry) throw new InputError(`${where}: no filter named "${wanted}" (have ${list.map((f) => f?.name).join(", ")})`);
  const steps = entry.filter;
  if (!Array.isArray(steps) || steps.length === 0) throw new InputError(`${where}: filter "${entry.name}" has no steps`);
  const [first, ...rest] = steps;
  if (first?.function !== "regex" || typeof first.regex_pattern !== "string" || rest.some((s) => s?.function !== "take_first")) {
    throw new InputError(`${where}: filter "${entry.name}": only "regex" (with regex_pattern) followed by "take_first" is supported`);
  }
  const groupSelect = first.group_select ?? 0;
  if (!Number.isInteger(groupSelect)) throw new InputError(`${where}: filter "${entry.name}": group_select must be an integer`);
  return { name: String(entry.name), regex: pythonRegex(first.regex_pattern, "g"), groupSelect, fallback: first.fallback ?? "[invalid]" };
}

function exactMatchMetric(list: unknown, where: string): ExactMatchOptions {
  const metrics = Array.isArray(list) ? list : [];
  const m = metrics.find((x) => x?.metric === "exact_match");
  if (!m) throw new InputError(`${where}: metric_list needs an exact_match entry (the only metric supported)`);
  const regexes = m.regexes_to_ignore ?? [];
  if (!Array.isArray(regexes) || !regexes.every((r: unknown) => typeof r === "string")) throw new InputError(`${where}: regexes_to_ignore must be a list of strings`);
  return { ignoreCase: Boolean(m.ignore_case), ignorePunctuation: Boolean(m.ignore_punctuation), regexesToIgnore: regexes, trim: false };
}

/** doc_to_text / doc_to_target: a field name of the record, or a Jinja template. */
function docField(value: unknown, key: string, where: string): (doc: Doc) => string {
  if (typeof value !== "string") throw new InputError(`${where}: ${key} must be a string (a field name or a template); got ${JSON.stringify(value)}`);
  const template = compileTemplate(value, `${where} ${key}`);
  return (doc) => (value in doc && !value.includes("{{") ? String(doc[value]) : template(doc));
}

function optionalString(spec: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = spec[key];
  if (v !== undefined && typeof v !== "string") throw new InputError(`${where}: ${key} must be a string`);
  return v;
}

/** The YAML with its `include:` chain merged (the including file's keys win); `!function` tags are refused. */
function readYaml(file: string, seen = new Set<string>()): Record<string, unknown> {
  if (seen.has(file)) throw new InputError(`${file}: include cycle`);
  seen.add(file);
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, "utf8"), {
      customTags: [{ tag: "!function", resolve: (s: string) => { throw new InputError(`${file}: "!function ${s}" runs Python code; not supported`); } }],
    });
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${file}: cannot read YAML (${(e as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new InputError(`${file}: a task YAML must be a mapping`);
  const spec = doc as Record<string, unknown>;
  if (typeof spec.include !== "string") return spec;
  const base = readYaml(path.resolve(path.dirname(file), spec.include), seen);
  const { include: _, ...own } = spec;
  return { ...base, ...own };
}
