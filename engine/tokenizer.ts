// Tokenizer: a checkpoint's tokenizer.json run through @huggingface/tokenizers, plus the chat template of
// tokenizer_config.json rendered with @huggingface/jinja (docs/architecture.md §7).
import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { InputError, TokenizerError } from "./errors.ts";

export interface ChatPart { type: string; text?: string; name?: string; [key: string]: unknown }
/** M1's message format: content is a list of parts; a plain string is accepted and becomes one text part. */
export interface ChatMessage { role: string; content: string | ChatPart[]; name?: string }

export class Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenIds: number[];
  private template: Template | null = null;

  private constructor(
    private readonly hf: HfTokenizer,
    private readonly config: Record<string, unknown>,
    private readonly dir: string,
    generationEos: unknown,
  ) {
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const eos = [this.tokenId(tokenContent(config.eos_token) ?? ""), ...[generationEos].flat()];
    this.eosTokenIds = [...new Set(eos.filter((id): id is number => Number.isInteger(id)))];
  }

  /** Loads `dir`/tokenizer.json (and tokenizer_config.json, generation_config.json if present); null without tokenizer.json. */
  static async load(dir: string): Promise<Tokenizer | null> {
    const file = path.join(dir, "tokenizer.json");
    if (!fs.existsSync(file)) return null;
    const json = readJson(file);
    const configFile = path.join(dir, "tokenizer_config.json");
    const config = fs.existsSync(configFile) ? readJson(configFile) : {};
    const genFile = path.join(dir, "generation_config.json");
    const generationEos = fs.existsSync(genFile) ? readJson(genFile).eos_token_id : undefined;
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(json, config);
    } catch (e) {
      throw new TokenizerError(`${file}: cannot build tokenizer (${(e as Error).message})`, { cause: e });
    }
    return new Tokenizer(hf, config, dir, generationEos);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const { ids, tokens } = this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true });
    const bad = ids.findIndex((id: number | undefined) => !Number.isInteger(id));
    if (bad >= 0) throw new TokenizerError(`${path.join(this.dir, "tokenizer.json")}: ${unknownPiece(text, tokens[bad])}`);
    return ids;
  }

  /** `skipUnknown` drops ids without a token (the padding rows of an embedding, which a model can still sample). */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean; skipUnknown?: boolean } = {}): string {
    const known = (id: number) => Number.isInteger(id) && this.hf.id_to_token(id) !== undefined;
    if (opts.skipUnknown) ids = ids.filter(known);
    for (const id of ids) {
      if (!known(id)) {
        throw new InputError(`token id ${id} is not in the vocabulary of the tokenizer in ${this.dir} (size ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return "";
    return this.hf.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Renders tokenizer_config.json's chat_template for `messages` (M1 format; string contents are normalised). */
  renderChat(messages: ChatMessage[], opts: { tools?: object[]; addGenerationPrompt?: boolean } = {}): string {
    const source = path.join(this.dir, "tokenizer_config.json");
    if (!this.template) this.template = compile(chatTemplateOf(this.config, source), source);
    return render(this.template, {
      messages: messages.map(normaliseMessage),
      tools: opts.tools,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: tokenContent(this.config.bos_token) ?? "",
      eos_token: tokenContent(this.config.eos_token) ?? "",
    }, source);
  }
}

/** Names an unknown piece, and the word around it when the pre-tokenizer cut the word smaller (one token per character). */
function unknownPiece(text: string, piece: string): string {
  const word = text.split(/\s+/).find((w) => w.includes(piece)) ?? piece;
  if (word === piece) return `piece ${JSON.stringify(piece)} is not in the vocabulary and there is no unk token`;
  return `${JSON.stringify(word)} is not in the vocabulary (its piece ${JSON.stringify(piece)} has no token, and there is no unk token)`;
}

/** Render a chat template without a tokenizer.json (e.g. from the real M1's tokenizer_config.json alone). */
export function renderChatTemplate(template: string, vars: object): string {
  const v = vars as Record<string, unknown>;
  const messages = Array.isArray(v.messages) ? { messages: (v.messages as ChatMessage[]).map(normaliseMessage) } : {};
  return render(compile(template, "<template>"), { ...v, ...messages }, "<template>");
}

function normaliseMessage(m: ChatMessage): ChatMessage {
  const parts: ChatPart[] = typeof m.content === "string" ? [{ type: "text", text: m.content }] : m.content;
  // A tool result's name may sit on the message; the template reads it from each part.
  return { ...m, content: parts.map((p) => (m.name !== undefined && p.name === undefined ? { ...p, name: m.name } : p)) };
}

function chatTemplateOf(config: Record<string, unknown>, source: string): string {
  let t = config.chat_template;
  if (Array.isArray(t)) t = t.find((x) => x?.name === "default")?.template ?? t[0]?.template; // named-template list form
  if (typeof t !== "string") throw new TokenizerError(`${source}: no chat_template`);
  return t;
}

function compile(template: string, source: string): Template {
  try {
    return new Template(template);
  } catch (e) {
    throw new TokenizerError(`${source}: cannot parse chat template (${(e as Error).message})`, { cause: e });
  }
}

function render(template: Template, vars: Record<string, unknown>, source: string): string {
  try {
    return template.render(vars);
  } catch (e) {
    throw new TokenizerError(`${source}: chat template failed (${(e as Error).message})`, { cause: e });
  }
}

/** Special tokens appear as a string or as an AddedToken object {content, ...}. */
function tokenContent(t: unknown): string | undefined {
  if (typeof t === "string") return t;
  if (typeof t === "object" && t !== null && typeof (t as { content?: unknown }).content === "string") {
    return (t as { content: string }).content;
  }
  return undefined;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new TokenizerError(`${file}: cannot read JSON (${(e as Error).message})`, { cause: e });
  }
}
