/**
 * Jupyter messages on the wire (messaging spec 5.3): identities, delimiter, HMAC signature, four JSON frames,
 * buffers. Shared by the kernel and by our own client (`m1 run`).
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

export const PROTOCOL_VERSION = "5.3";
const DELIMITER = "<IDS|MSG>";

export interface Header {
  msg_id: string;
  session: string;
  username: string;
  date: string;
  msg_type: string;
  version: string;
}

export interface Message<C = Record<string, any>> {
  identities: Buffer[];
  header: Header;
  parent_header: Partial<Header>;
  metadata: Record<string, unknown>;
  content: C;
  buffers: Buffer[];
}

export class WireError extends Error {}

/** Signs and checks messages with the connection file's key ("hmac-sha256"; an empty key disables signing). */
export class Signer {
  private readonly key: Buffer;

  constructor(key: string, scheme = "hmac-sha256") {
    if (key && scheme !== "hmac-sha256") throw new WireError(`unsupported signature_scheme "${scheme}" (only hmac-sha256)`);
    this.key = Buffer.from(key, "utf8");
  }

  sign(frames: Buffer[]): string {
    if (this.key.length === 0) return "";
    const hmac = createHmac("sha256", this.key);
    for (const f of frames) hmac.update(f);
    return hmac.digest("hex");
  }

  verify(signature: Buffer, frames: Buffer[]): boolean {
    if (this.key.length === 0) return true;
    const expected = Buffer.from(this.sign(frames), "utf8");
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  }
}

export function newHeader(msgType: string, session: string, username = "m1"): Header {
  return { msg_id: randomUUID(), session, username, date: new Date().toISOString(), msg_type: msgType, version: PROTOCOL_VERSION };
}

/** The frames of a message, ready for a zeromq send. */
export function encode(signer: Signer, msg: Omit<Message, "identities" | "buffers"> & { identities?: Buffer[]; buffers?: Buffer[] }): Buffer[] {
  const json = [msg.header, msg.parent_header, msg.metadata, msg.content].map((x) => Buffer.from(JSON.stringify(x), "utf8"));
  return [...(msg.identities ?? []), Buffer.from(DELIMITER), Buffer.from(signer.sign(json)), ...json, ...(msg.buffers ?? [])];
}

/** Parses and verifies received frames; throws WireError saying what is wrong. */
export function decode(signer: Signer, frames: Buffer[]): Message {
  const at = frames.findIndex((f) => f.length === DELIMITER.length && f.toString("utf8") === DELIMITER);
  if (at < 0) throw new WireError("no <IDS|MSG> delimiter");
  if (frames.length < at + 6) throw new WireError(`expected signature and 4 JSON frames after the delimiter, got ${frames.length - at - 1} frames`);
  const json = frames.slice(at + 2, at + 6);
  if (!signer.verify(frames[at + 1], json)) throw new WireError("bad signature");
  const [header, parent_header, metadata, content] = json.map((f, i) => {
    try {
      return JSON.parse(f.toString("utf8"));
    } catch {
      throw new WireError(`frame ${["header", "parent_header", "metadata", "content"][i]} is not JSON`);
    }
  });
  if (typeof header?.msg_type !== "string" || typeof header?.msg_id !== "string") throw new WireError("header lacks msg_type or msg_id");
  return { identities: frames.slice(0, at), header, parent_header: parent_header ?? {}, metadata: metadata ?? {}, content: content ?? {}, buffers: frames.slice(at + 6) };
}
