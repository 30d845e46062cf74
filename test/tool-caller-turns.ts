// The conversations test/fixtures/tool-caller was fine-tuned on (test/make-tool-caller.ts), as the OpenAI requests a
// client sends: the tests send the very same requests to `m1 serve` and expect these answers back.

/** One request, the answer the model was trained to give, and the start of the answer the server forces (tool_choice). */
export interface TrainedTurn { request: Record<string, unknown>; forced?: string; answer: string }

export const TOOLS = [
  { type: "function", function: { name: "get_weather", description: "Current weather in a city", parameters: { type: "object", properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } }, required: ["city"] } } },
  { type: "function", function: { name: "get_time", description: "Local time in a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
];

export const QUESTION = { role: "user", content: "What is the weather and time in Paris?" };

export const THOUGHT = "Weather and time for Paris.";
export const LEAD_IN = "Let me check.";
export const WEATHER_CALL = { name: "get_weather", arguments: { city: "Paris", unit: "celsius" } };
export const TIME_CALL = { name: "get_time", arguments: { city: "Paris" } };
/** The calls as M1 writes them (Python json.dumps spacing), closing the block. */
export const CALL_LINES = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_calls>';

/** The assistant turn a client replays after the calls: the visible content and the calls (ids as the server gave them). */
export function replayedCalls(ids: [string, string]): Record<string, unknown> {
  return {
    role: "assistant", content: LEAD_IN,
    tool_calls: [WEATHER_CALL, TIME_CALL].map((c, i) => ({ id: ids[i], type: "function", function: { name: c.name, arguments: JSON.stringify(c.arguments) } })),
  };
}

export const RESULTS = ["18 C, sunny", "14:05"];
export const FINAL_ANSWER = "It is 18 C and sunny in Paris, and the time is 14:05.";
export const NO_TOOLS_ANSWER = "I cannot look that up.";

export const TOOL_CALLER_TURNS: TrainedTurn[] = [
  // tool_choice auto: think, say so, then both calls
  { request: { messages: [QUESTION], tools: TOOLS }, answer: `<think>\n${THOUGHT}\n</think>\n${LEAD_IN}\n<tool_calls>\n${CALL_LINES}` },
  // tool_choice required (the server starts the answer with the block) and named get_weather
  { request: { messages: [QUESTION], tools: TOOLS, tool_choice: "required" }, forced: "<tool_calls>\n", answer: CALL_LINES },
  // tool_choice named get_time: its call alone
  {
    request: { messages: [QUESTION], tools: TOOLS, tool_choice: { type: "function", function: { name: "get_time" } } },
    forced: '<tool_calls>\n{"name": "get_time", "arguments": ', answer: '{"city": "Paris"}}\n</tool_calls>',
  },
  // tool_choice none: no tools section in the prompt, a plain answer
  { request: { messages: [QUESTION], tools: TOOLS, tool_choice: "none" }, answer: `<think>\nNo tools.\n</think>\n${NO_TOOLS_ANSWER}` },
  // the next turn: the calls and their results rendered back, then the answer
  {
    request: {
      messages: [QUESTION, replayedCalls(["call_1", "call_2"]), ...RESULTS.map((content, i) => ({ role: "tool", tool_call_id: `call_${i + 1}`, content }))],
      tools: TOOLS,
    },
    answer: `<think>\nThe tools answered.\n</think>\n${FINAL_ANSWER}`,
  },
];
