// The load generator's HTTP client (./load.ts): kept-alive HTTP/1.1 connections that POST JSON and read each JSON
// reply whole, with less CPU per request than node:http, since client and server share the machine's cores.
import net from "node:net";

/** The status and parsed JSON body of one reply. */
export interface JsonReply { status: number; json: any }

/**
 * One kept-alive HTTP/1.1 connection that POSTs JSON and reads each reply whole (sized by Content-Length or sent
 * chunked). The same requests node:http sends, for about a third of its CPU time per request, which matters when
 * client and server share the cores (node:http's request and response objects and streams cost ~140 µs per request
 * on this machine, this ~50; `fetch` costs more than node:http).
 */
export class JsonConnection {
  private socket: net.Socket | null = null;
  private received: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: JsonReply) => void; reject: (e: Error) => void } | null = null;
  /** when the last reply arrived (performance.now()) */
  private lastReply = 0;

  constructor(private readonly url: URL) {}

  post(body: unknown): Promise<JsonReply> {
    if (this.waiting) throw new Error("JsonConnection: one request at a time");
    const text = JSON.stringify(body);
    // a server closes a connection idle for its keep-alive timeout (node:http's default: 5 s); a request written just
    // as it does would be lost, so a connection idle for nearly that long is not reused
    if (this.socket && performance.now() - this.lastReply > IDLE_REUSE_MS) this.drop();
    const socket = this.socket ?? this.connect();
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      socket.write(`POST ${this.url.pathname} HTTP/1.1\r\nhost: ${this.url.host}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
    });
  }

  close(): void {
    this.drop();
  }

  private connect(): net.Socket {
    const socket = net.connect(Number(this.url.port || 80), this.url.hostname);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.received = this.received.length ? Buffer.concat([this.received, chunk]) : chunk;
      this.settle();
    });
    const lost = (e?: Error) => {
      if (this.socket !== socket) return; // a socket this connection already let go of
      this.drop();
      this.fail(new Error(`${this.url.host} closed the connection before its reply${e ? `: ${e.message}` : ""}`));
    };
    socket.on("error", lost);
    socket.on("close", () => lost());
    this.socket = socket;
    return socket;
  }

  /** Lets go of the socket (the next request opens another). */
  private drop(): void {
    const socket = this.socket;
    this.socket = null;
    this.received = Buffer.alloc(0);
    socket?.destroy();
  }

  private fail(error: Error): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(error);
  }

  /** Resolves the waiting request once its whole reply has arrived. */
  private settle(): void {
    const buffer = this.received;
    const headEnd = buffer.indexOf("\r\n\r\n");
    if (headEnd < 0 || !this.waiting) return;
    const head = buffer.toString("latin1", 0, headEnd);
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
    const isChunked = /\r\ntransfer-encoding:[ \t]*chunked/i.test(head);
    if (!status || (!length && !isChunked)) {
      this.drop();
      return this.fail(new Error(`${this.url.host} sent a reply without a status line, or with neither Content-Length nor chunks: ${head.slice(0, 200)}`));
    }
    const body = length ? sized(buffer, headEnd + 4, Number(length[1])) : chunked(buffer, headEnd + 4);
    if (!body) return; // more to come
    this.received = buffer.subarray(body.end);
    if (/\r\nconnection:[ \t]*close/i.test(head)) this.drop();
    const waiting = this.waiting;
    this.waiting = null;
    this.lastReply = performance.now();
    try {
      waiting.resolve({ status: Number(status[1]), json: JSON.parse(body.text) });
    } catch (e) {
      waiting.reject(new Error(`${this.url.host} replied with a body that is not JSON (${(e as Error).message})`));
    }
  }
}

/** Longest idle time after which a connection is reused (under node:http's default keep-alive timeout of 5 s). */
const IDLE_REUSE_MS = 4000;

/** A body of `length` bytes at `from` (undefined until all of it is there). */
function sized(buffer: Buffer, from: number, length: number): { text: string; end: number } | undefined {
  return buffer.length < from + length ? undefined : { text: buffer.toString("utf8", from, from + length), end: from + length };
}

/** A chunked body at `from`: hex size lines, each chunk followed by CRLF, up to the empty last chunk (undefined until all of it is there). */
function chunked(buffer: Buffer, from: number): { text: string; end: number } | undefined {
  const parts: Buffer[] = [];
  for (let at = from; ;) {
    const line = buffer.indexOf("\r\n", at);
    if (line < 0) return undefined;
    const size = parseInt(buffer.toString("latin1", at, line), 16);
    if (size === 0) {
      const end = buffer.indexOf("\r\n\r\n", line);
      return end < 0 ? undefined : { text: Buffer.concat(parts).toString("utf8"), end: end + 4 };
    }
    if (buffer.length < line + 2 + size + 2) return undefined;
    parts.push(buffer.subarray(line + 2, line + 2 + size));
    at = line + 2 + size + 2;
  }
}
