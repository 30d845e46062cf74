/**
 * The kernel's five sockets and the request loop: shell requests one at a time in arrival order, control
 * requests at once (so interrupt and shutdown reach a busy kernel), busy/idle around each, heartbeat echo, and
 * input_request on stdin. Messages with a bad signature or a broken shape are logged and dropped.
 */
import { randomUUID } from "node:crypto";
import * as zmq from "zeromq";
import { address, type ConnectionInfo } from "./connection.ts";
import { Signer, decode, encode, newHeader, WireError, type Message } from "./wire.ts";

export type Channel = "shell" | "control";
export type Handler = (msg: Message, channel: Channel) => Promise<unknown> | void;

/** Sends on one socket in order (zeromq allows one pending send per socket). */
class Outbox {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly socket: zmq.Writable<zmq.MessageLike[]>, private readonly log: (line: string) => void) {}
  send(frames: Buffer[]): Promise<void> {
    this.chain = this.chain.then(() => this.socket.send(frames)).catch((err) => this.log(`send failed: ${(err as Error).message}`));
    return this.chain;
  }
  /** Resolves when everything sent so far has been queued on the socket. */
  flushed(): Promise<void> {
    return this.chain;
  }
}

export class KernelServer {
  readonly session = randomUUID();
  private readonly signer: Signer;
  private readonly shell = new zmq.Router();
  private readonly control = new zmq.Router();
  private readonly stdin = new zmq.Router();
  private readonly iopub = new zmq.Publisher();
  private readonly hb = new zmq.Reply();
  private readonly out: Record<"shell" | "control" | "stdin" | "iopub", Outbox>;
  private readonly queue: Message[] = [];
  private draining = false;
  private readonly pendingInput = new Map<string, (text: string) => void>();

  constructor(
    private readonly info: ConnectionInfo,
    private readonly handlers: Record<string, Handler>,
    readonly log: (line: string) => void,
  ) {
    this.signer = new Signer(info.key, info.signature_scheme);
    this.out = {
      shell: new Outbox(this.shell, log),
      control: new Outbox(this.control, log),
      stdin: new Outbox(this.stdin, log),
      iopub: new Outbox(this.iopub, log),
    };
  }

  async start(): Promise<void> {
    for (const s of [this.shell, this.control, this.stdin, this.iopub, this.hb]) s.linger = 1000;
    await Promise.all([
      this.shell.bind(address(this.info, "shell")),
      this.control.bind(address(this.info, "control")),
      this.stdin.bind(address(this.info, "stdin")),
      this.iopub.bind(address(this.info, "iopub")),
      this.hb.bind(address(this.info, "hb")),
    ]);
    void this.listen(this.shell, (msg) => this.enqueue(msg));
    void this.listen(this.control, (msg) => void this.handle(msg, "control"));
    void this.listen(this.stdin, (msg) => this.onInputReply(msg));
    void this.heartbeat();
    this.publish("status", { execution_state: "starting" });
  }

  private async listen(socket: zmq.Router, onMessage: (msg: Message) => void): Promise<void> {
    try {
      for await (const frames of socket) {
        let msg: Message;
        try {
          msg = decode(this.signer, frames);
        } catch (err) {
          if (!(err instanceof WireError)) throw err;
          this.log(`rejected a message: ${err.message}`);
          continue;
        }
        onMessage(msg);
      }
    } catch (err) {
      if (!socket.closed) this.log(`socket loop ended: ${(err as Error).stack}`);
    }
  }

  private async heartbeat(): Promise<void> {
    try {
      for await (const frames of this.hb) await this.hb.send(frames);
    } catch (err) {
      if (!this.hb.closed) this.log(`heartbeat ended: ${(err as Error).message}`);
    }
  }

  private enqueue(msg: Message): void {
    this.queue.push(msg);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.queue.length) await this.handle(this.queue.shift()!, "shell");
    this.draining = false;
  }

  /**
   * stop_on_error: answers the execute requests waiting in the queue with "aborted". Called by a failed execute
   * before it replies, so that only requests sent before the failure was known are aborted.
   */
  async abortQueued(): Promise<void> {
    // Let requests that have reached the socket get into the queue first.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    for (const waiting of this.queue.filter((m) => m.header.msg_type === "execute_request")) {
      this.queue.splice(this.queue.indexOf(waiting), 1);
      this.publish("status", { execution_state: "busy" }, waiting);
      this.reply("shell", waiting, "execute_reply", { status: "aborted", execution_count: null });
      this.publish("status", { execution_state: "idle" }, waiting);
    }
  }

  private async handle(msg: Message, channel: Channel): Promise<void> {
    const type = msg.header.msg_type;
    this.publish("status", { execution_state: "busy" }, msg);
    try {
      const handler = this.handlers[type];
      if (handler) return void (await handler(msg, channel));
      this.log(`unknown message type "${type}" on ${channel}`);
      if (type.endsWith("_request")) {
        this.reply(channel, msg, type.replace(/_request$/, "_reply"), { status: "error", ename: "UnknownMessageType", evalue: `the m1 kernel does not handle "${type}"`, traceback: [] });
      }
    } catch (err) {
      this.log(`handler for ${type} failed: ${(err as Error).stack}`);
      if (type.endsWith("_request")) {
        this.reply(channel, msg, type.replace(/_request$/, "_reply"), { status: "error", ename: (err as Error).name, evalue: (err as Error).message, traceback: [] });
      }
    } finally {
      this.publish("status", { execution_state: "idle" }, msg);
    }
  }

  reply(channel: Channel | "stdin", request: Message, msgType: string, content: object, metadata: Record<string, unknown> = {}): Promise<void> {
    const header = newHeader(msgType, this.session);
    return this.out[channel].send(encode(this.signer, { identities: request.identities, header, parent_header: request.header, metadata, content }));
  }

  publish(msgType: string, content: object, parent?: Message, extra: { metadata?: Record<string, unknown>; buffers?: Buffer[] } = {}): Promise<void> {
    const header = newHeader(msgType, this.session);
    const topic = Buffer.from(`kernel.${this.session}.${msgType}`);
    return this.out.iopub.send(
      encode(this.signer, { identities: [topic], header, parent_header: parent?.header ?? {}, metadata: extra.metadata ?? {}, content, buffers: extra.buffers }),
    );
  }

  /** Asks the frontend that sent `parent` (an execute request) for a line of input. */
  input(parent: Message, prompt: string, password: boolean): Promise<string> {
    return new Promise((resolve) => {
      const header = newHeader("input_request", this.session);
      this.pendingInput.set(header.msg_id, resolve);
      void this.out.stdin.send(encode(this.signer, { identities: parent.identities, header, parent_header: parent.header, metadata: {}, content: { prompt, password } }));
    });
  }

  private onInputReply(msg: Message): void {
    const resolve = this.pendingInput.get(msg.parent_header.msg_id ?? "");
    if (msg.header.msg_type !== "input_reply" || !resolve) return this.log(`unexpected ${msg.header.msg_type} on stdin`);
    this.pendingInput.delete(msg.parent_header.msg_id!);
    resolve(String(msg.content.value ?? ""));
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.out).map((o) => o.flushed()));
    for (const s of [this.shell, this.control, this.stdin, this.iopub, this.hb]) s.close();
  }
}
