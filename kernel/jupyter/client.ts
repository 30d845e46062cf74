/** A Jupyter client over zeromq: what `m1 run` uses to talk to a kernel it started, with no Jupyter server. */
import { randomUUID } from "node:crypto";
import * as zmq from "zeromq";
import { address, type ConnectionInfo } from "./connection.ts";
import { Signer, decode, encode, newHeader, type Message } from "./wire.ts";

export class KernelClient {
  readonly session = randomUUID();
  private readonly signer: Signer;
  private readonly shell = new zmq.Dealer({ routingId: this.session });
  private readonly control = new zmq.Dealer({ routingId: `${this.session}-control` });
  private readonly iopub = new zmq.Subscriber();
  private readonly replies = new Map<string, (msg: Message) => void>();
  private readonly watchers = new Map<string, (msg: Message) => void>();
  private closed = false;

  private constructor(private readonly info: ConnectionInfo) {
    this.signer = new Signer(info.key, info.signature_scheme);
  }

  /** Connects and waits until the kernel answers kernel_info with its iopub messages reaching us. */
  static async connect(info: ConnectionInfo, timeoutMs = 30_000): Promise<{ client: KernelClient; kernelInfo: Message }> {
    const client = new KernelClient(info);
    for (const s of [client.shell, client.control, client.iopub]) s.linger = 0;
    client.shell.connect(address(info, "shell"));
    client.control.connect(address(info, "control"));
    client.iopub.connect(address(info, "iopub"));
    client.iopub.subscribe();
    void client.listen(client.shell);
    void client.listen(client.control);
    void client.listenIopub();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const { msgId, reply } = client.request("shell", "kernel_info_request", {});
      const seen = new Promise<void>((resolve) => client.watchers.set(msgId, () => resolve()));
      const done = await Promise.race([Promise.all([reply, seen]).then(([r]) => r), new Promise<null>((r) => setTimeout(() => r(null), 100))]);
      client.watchers.delete(msgId);
      if (done) return { client, kernelInfo: done };
    }
    client.close();
    throw new Error(`the kernel did not answer kernel_info within ${timeoutMs / 1000} s`);
  }

  private async listen(socket: zmq.Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        const msg = decode(this.signer, frames);
        const resolve = this.replies.get(msg.parent_header.msg_id ?? "");
        if (resolve) {
          this.replies.delete(msg.parent_header.msg_id!);
          resolve(msg);
        }
      }
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  private async listenIopub(): Promise<void> {
    try {
      for await (const frames of this.iopub) {
        const msg = decode(this.signer, frames);
        this.watchers.get(msg.parent_header.msg_id ?? "")?.(msg);
      }
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  request(channel: "shell" | "control", msgType: string, content: object): { msgId: string; reply: Promise<Message> } {
    const header = newHeader(msgType, this.session);
    const reply = new Promise<Message>((resolve) => this.replies.set(header.msg_id, resolve));
    void (channel === "shell" ? this.shell : this.control).send(encode(this.signer, { header, parent_header: {}, metadata: {}, content }));
    return { msgId: header.msg_id, reply };
  }

  /** Runs code; `onOutput` gets each iopub message of the request; resolves with the reply once the kernel is idle. */
  async execute(code: string, onOutput: (msg: Message) => void, silent = false): Promise<Message> {
    const { msgId, reply } = this.request("shell", "execute_request", { code, silent, store_history: !silent, user_expressions: {}, allow_stdin: false, stop_on_error: true });
    const idle = new Promise<void>((resolve) =>
      this.watchers.set(msgId, (msg) => {
        if (msg.header.msg_type === "status") {
          if (msg.content.execution_state === "idle") resolve();
        } else onOutput(msg);
      }),
    );
    const [r] = await Promise.all([reply, idle]);
    this.watchers.delete(msgId);
    return r;
  }

  close(): void {
    this.closed = true;
    for (const s of [this.shell, this.control, this.iopub]) s.close();
  }
}
