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
  /** tokenizer_config's pad_token, when it names a token */
  readonly padTokenId: number | null;
  private template: Template | null = null;
  /** byte-level BPE (GPT-2's alphabet; M1's tokenizer): each character of a token's string stands for one byte */
  private readonly byteOf: Map<string, number> | null;

  private constructor(
    private readonly hf: HfTokenizer,
    private readonly config: Record<string, unknown>,
    private readonly dir: string,
    generationEos: unknown,
    byteLevel: boolean,
  ) {
    this.byteOf = byteLevel ? new Map(byteAlphabet().map((c, b) => [c, b])) : null;
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const eos = [this.tokenId(tokenContent(config.eos_token) ?? ""), ...[generationEos].flat()];
    this.eosTokenIds = [...new Set(eos.filter((id): id is number => Number.isInteger(id)))];
    const pad = tokenContent(config.pad_token);
    this.padTokenId = pad === undefined ? null : this.tokenId(pad) ?? null;
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
    return new Tokenizer(hf, config, dir, generationEos, isByteLevel(json.decoder));
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

  /**
   * The bytes a token stands for, when the tokenizer is byte-level (a token may be part of a UTF-8 character, which
   * its decoded text cannot show); null for other tokenizers and ids without a token. Special tokens are their text.
   */
  tokenBytes(id: number): number[] | null {
    const token = this.byteOf && Number.isInteger(id) ? this.hf.id_to_token(id) : undefined;
    if (token === undefined) return null;
    const bytes = [...token].map((c) => this.byteOf!.get(c));
    return bytes.every((b) => b !== undefined) ? (bytes as number[]) : [...Buffer.from(token, "utf8")];
  }

  /** Whether tokenizer_config.json has a chat_template (read when the tokenizer loaded). */
  get hasChatTemplate(): boolean {
    return this.config.chat_template !== undefined && this.config.chat_template !== null;
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

/** GPT-2's map from bytes to printable characters (the alphabet of byte-level BPE): character i stands for byte i. */
export function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let shifted = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + shifted++));
}

/** Whether tokenizer.json's decoder is ByteLevel (alone or in a Sequence). */
function isByteLevel(decoder: unknown): boolean {
  const d = decoder as { type?: unknown; decoders?: unknown[] } | null | undefined;
  return d?.type === "ByteLevel" || (d?.type === "Sequence" && Array.isArray(d.decoders) && d.decoders.some(isByteLevel));
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
