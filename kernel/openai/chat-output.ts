// A chat answer's text split the way the serving engines return it, as it streams: the thought (`<think>…</think>`
// at the start) into `reasoning_content` (vLLM's minimax_m1 reasoning parser; only when the server is started with
// it), M1's <tool_calls> blocks into OpenAI tool calls (only when the request offers tools), the rest as `content`.
// The whole answer is the same machine fed all the text at once, so streamed and whole answers always agree:
//   reasoning: the thought, trimmed;  content: the rest with the call blocks taken out, trimmed (with tools);
//   a block is held until it closes (or the answer ends) and parsed by engine/tool-calls.ts: a block that is not
//   calls is given back as content where it stood, so a malformed call is never half-sent as a call.
import { parseToolCalls, TOOL_CALLS_CLOSE, TOOL_CALLS_OPEN, type ToolCall } from "../../engine/tool-calls.ts";
import { heldBack } from "./completion.ts";

export const THINK_OPEN = "<think>";
export const THINK_CLOSE = "</think>";

/** One streamed call delta, as OpenAI sends it: the first with id, type and name, the next with the arguments. */
export interface ToolCallDelta { index: number; id?: string; type?: "function"; function: { name?: string; arguments: string } }

export interface ChatDelta { reasoning_content?: string; content?: string; tool_calls?: ToolCallDelta[] }

export interface ChatOutputOptions {
  /** split a leading <think>…</think> into reasoning_content */
  reasoning: boolean;
  /** take <tool_calls> blocks as calls */
  tools: boolean;
}

export class ChatOutput {
  private phase: "start" | "reasoning" | "content";
  /** text pushed but not yet given out */
  private buffer = "";
  /** an open <tool_calls> block, from its opening tag, in pieces (joined once it closes: a long block is not
   *  searched again in full at every piece) */
  private block: string[] | null = null;
  /** the block's last characters, where a closing tag that the next piece completes starts */
  private blockTail = "";
  /** content whitespace held until more content follows (content is trimmed at its end) */
  private pendingSpace = "";
  private reasoningStarted = false;
  private contentStarted = false;
  private readonly calls: ToolCall[] = [];

  constructor(private readonly options: ChatOutputOptions) {
    this.phase = options.reasoning ? "start" : "content";
  }

  /** The deltas that `text` (the next piece of the answer) makes certain. */
  push(text: string): ChatDelta[] {
    this.buffer += text;
    return this.drain(false);
  }

  /** The deltas of the rest, once the answer has ended. */
  end(): ChatDelta[] {
    return this.drain(true);
  }

  /** The calls given out so far. */
  get toolCalls(): readonly ToolCall[] {
    return this.calls;
  }

  private drain(final: boolean): ChatDelta[] {
    const out: ChatDelta[] = [];
    for (;;) {
      if (this.phase === "start") {
        const t = this.buffer.trimStart();
        if (t.startsWith(THINK_OPEN)) {
          this.buffer = t.slice(THINK_OPEN.length);
          this.phase = "reasoning";
        } else if (!final && THINK_OPEN.startsWith(t)) {
          return out; // may still become <think>
        } else {
          this.phase = "content";
        }
      } else if (this.phase === "reasoning") {
        const at = this.buffer.indexOf(THINK_CLOSE);
        if (at >= 0) {
          this.reasoning(out, this.buffer.slice(0, at).trimEnd());
          this.buffer = this.buffer.slice(at + THINK_CLOSE.length);
          this.phase = "content";
          continue;
        }
        // hold back trailing whitespace (the thought is trimmed) and what may be the start of </think>
        const cut = final ? this.buffer.trimEnd().length : this.buffer.slice(0, this.buffer.length - heldBack(this.buffer, [THINK_CLOSE])).trimEnd().length;
        this.reasoning(out, this.buffer.slice(0, cut));
        this.buffer = final ? "" : this.buffer.slice(cut);
        return out;
      } else if (this.block !== null) {
        const piece = this.buffer;
        this.buffer = "";
        const window = this.blockTail + piece; // the opening tag, first in the block's first piece, holds no "</"
        const at = window.indexOf(TOOL_CALLS_CLOSE);
        if (at < 0 && !final) {
          this.block.push(piece);
          this.blockTail = window.slice(-(TOOL_CALLS_CLOSE.length - 1));
          return out;
        }
        const end = at < 0 ? piece.length : at + TOOL_CALLS_CLOSE.length - this.blockTail.length; // within the piece
        this.block.push(piece.slice(0, end));
        this.buffer = piece.slice(end);
        this.closeBlock(out, this.block.join(""));
        this.block = null;
        this.blockTail = "";
      } else if (this.options.tools) {
        const at = this.buffer.indexOf(TOOL_CALLS_OPEN);
        if (at >= 0) {
          this.content(out, this.buffer.slice(0, at));
          this.block = [];
          this.buffer = this.buffer.slice(at);
          continue;
        }
        const keep = final ? 0 : heldBack(this.buffer, [TOOL_CALLS_OPEN]);
        this.content(out, this.buffer.slice(0, this.buffer.length - keep));
        this.buffer = this.buffer.slice(this.buffer.length - keep);
        return out;
      } else {
        this.content(out, this.buffer);
        this.buffer = "";
        return out;
      }
    }
  }

  private reasoning(out: ChatDelta[], text: string): void {
    if (!this.reasoningStarted) text = text.trimStart();
    if (!text) return;
    this.reasoningStarted = true;
    out.push({ reasoning_content: text });
  }

  /** Content after a thought starts at its first non-space; with tools it also ends at its last (whitespace waits). */
  private content(out: ChatDelta[], text: string): void {
    if (!this.contentStarted && (this.options.reasoning || this.options.tools)) text = text.trimStart();
    if (!text) return;
    if (this.options.tools) {
      const body = text.trimEnd();
      if (!body) {
        this.pendingSpace += text;
        return;
      }
      out.push({ content: this.pendingSpace + body });
      this.pendingSpace = text.slice(body.length);
    } else {
      out.push({ content: text });
    }
    this.contentStarted = true;
  }

  private closeBlock(out: ChatDelta[], block: string): void {
    const { toolCalls, error } = parseToolCalls(block);
    if (error !== null) return this.content(out, block);
    for (const call of toolCalls) {
      const index = this.calls.length;
      this.calls.push(call);
      out.push({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] });
      out.push({ tool_calls: [{ index, function: { arguments: call.function.arguments } }] });
    }
  }
}

/** A whole answer split as ChatOutput streams it. */
export function splitChatAnswer(text: string, options: ChatOutputOptions): { reasoning: string | null; content: string; toolCalls: ToolCall[] } {
  const output = new ChatOutput(options);
  const deltas = [...output.push(text), ...output.end()];
  const reasoning = deltas.filter((d) => d.reasoning_content !== undefined);
  return {
    reasoning: reasoning.length ? reasoning.map((d) => d.reasoning_content).join("") : null,
    content: deltas.map((d) => d.content ?? "").join(""),
    toolCalls: [...output.toolCalls],
  };
}
