// MiniMax-M1's function-call format (the chat template's tools section and the function-call guide of
// github.com/MiniMax-AI/MiniMax-M1): the model answers a call as a <tool_calls> block holding one JSON object
// {"name": …, "arguments": {…}} per line. Parsed here into OpenAI's `tool_calls`, and rendered back into the same
// block when an assistant turn that made calls is replayed in a conversation.
import { randomBytes } from "node:crypto";

export interface ToolCall {
  id: string;
  type: "function";
  /** arguments as a JSON string, as OpenAI's API carries them */
  function: { name: string; arguments: string };
}

export interface ParsedToolCalls {
  /** the text outside the blocks taken as calls (a block that does not parse stays in it, where it was), trimmed */
  content: string;
  toolCalls: ToolCall[];
  /** why the first block that was not taken as calls was not, if one was not */
  error: string | null;
}

export const TOOL_CALLS_OPEN = "<tool_calls>";
export const TOOL_CALLS_CLOSE = "</tool_calls>";

/** A block runs to its closing tag or, when the answer was cut off inside it, to the end of the text. */
const BLOCK = /<tool_calls>([\s\S]*?)(?:<\/tool_calls>|$)/g;

/**
 * The calls in `text`, block by block: a block whose every line is {"name": string, "arguments": object} becomes
 * calls and leaves the text; a block with any other line stays in the text as written.
 */
export function parseToolCalls(text: string): ParsedToolCalls {
  if (!text.includes(TOOL_CALLS_OPEN)) return { content: text, toolCalls: [], error: null };
  const toolCalls: ToolCall[] = [];
  let error: string | null = null;
  const content = text.replace(BLOCK, (block: string, body: string) => {
    const calls = blockCalls(body);
    if (typeof calls === "string") {
      error ??= calls;
      return block;
    }
    toolCalls.push(...calls);
    return "";
  });
  return { content: content.trim(), toolCalls, error };
}

/** The calls of one block's body, one JSON object per line, or why the block is not calls. */
function blockCalls(body: string): ToolCall[] | string {
  const calls: ToolCall[] = [];
  for (const line of body.split("\n").map((l) => l.trim()).filter(Boolean)) {
    let call: unknown;
    try {
      call = JSON.parse(line);
    } catch {
      return `not a JSON object: ${line.slice(0, 120)}`;
    }
    const c = call as { name?: unknown; arguments?: unknown };
    if (typeof c !== "object" || c === null || typeof c.name !== "string" || typeof c.arguments !== "object" || c.arguments === null || Array.isArray(c.arguments)) {
      return `a call must be {"name": string, "arguments": object}: ${line.slice(0, 120)}`;
    }
    calls.push({ id: `call_${randomBytes(12).toString("hex")}`, type: "function", function: { name: c.name, arguments: JSON.stringify(c.arguments) } });
  }
  return calls;
}

/** An assistant turn's calls as the model writes them, to replay the turn. */
export function renderToolCalls(calls: { name: string; arguments: string | object }[]): string {
  const lines = calls.map((c) => JSON.stringify({ name: c.name, arguments: typeof c.arguments === "string" ? JSON.parse(c.arguments) : c.arguments }));
  return `${TOOL_CALLS_OPEN}\n${lines.join("\n")}\n${TOOL_CALLS_CLOSE}`;
}
