/** Comms (comm_open / comm_msg / comm_close / comm_info): named channels between cell code and the frontend. */
import { randomUUID } from "node:crypto";

export type CommSend = (msgType: "comm_open" | "comm_msg" | "comm_close", content: object, buffers?: Buffer[]) => void;

export class Comm {
  /** Called with each message from the frontend. */
  onMsg?: (data: unknown, buffers: Buffer[]) => void;
  /** Called when the frontend closes the comm. */
  onClose?: (data: unknown) => void;
  private closed = false;

  constructor(readonly id: string, readonly targetName: string, private readonly out: CommSend, private readonly forget: (id: string) => void) {}

  send(data: unknown, buffers?: Buffer[]): void {
    if (this.closed) throw new Error(`comm ${this.id} (${this.targetName}) is closed`);
    this.out("comm_msg", { comm_id: this.id, data }, buffers);
  }

  close(data: unknown = {}): void {
    if (this.closed) return;
    this.out("comm_close", { comm_id: this.id, data });
    this.ended();
  }

  /** The comm ended (closed by either side). */
  ended(): void {
    this.closed = true;
    this.forget(this.id);
  }
}

/** Called when the frontend opens a comm to a target: set `comm.onMsg` / `comm.onClose` here. */
export type CommTarget = (comm: Comm, data: unknown, buffers: Buffer[]) => void;

export class CommManager {
  private readonly targets = new Map<string, CommTarget>();
  private readonly comms = new Map<string, Comm>();

  constructor(private readonly out: CommSend, private readonly log: (line: string) => void) {}

  registerTarget(name: string, target: CommTarget): void {
    this.targets.set(name, target);
  }

  /** Opens a comm from the kernel side. */
  open(targetName: string, data: unknown = {}): Comm {
    const comm = this.add(randomUUID(), targetName);
    this.out("comm_open", { comm_id: comm.id, target_name: targetName, data });
    return comm;
  }

  private add(id: string, targetName: string): Comm {
    const comm = new Comm(id, targetName, this.out, (gone) => this.comms.delete(gone));
    this.comms.set(id, comm);
    return comm;
  }

  /** comm_open from the frontend; an unknown target is answered with comm_close, as the spec asks. */
  opened(content: { comm_id: string; target_name: string; data?: unknown }, buffers: Buffer[]): void {
    const target = this.targets.get(content.target_name);
    if (!target) {
      this.log(`comm_open for unknown target "${content.target_name}"`);
      this.out("comm_close", { comm_id: content.comm_id, data: {} });
      return;
    }
    target(this.add(content.comm_id, content.target_name), content.data ?? {}, buffers);
  }

  message(content: { comm_id: string; data?: unknown }, buffers: Buffer[]): void {
    const comm = this.comms.get(content.comm_id);
    if (!comm) return this.log(`comm_msg for unknown comm ${content.comm_id}`);
    comm.onMsg?.(content.data ?? {}, buffers);
  }

  closed(content: { comm_id: string; data?: unknown }): void {
    const comm = this.comms.get(content.comm_id);
    if (!comm) return this.log(`comm_close for unknown comm ${content.comm_id}`);
    comm.ended();
    comm.onClose?.(content.data ?? {});
  }

  info(targetName?: string): Record<string, { target_name: string }> {
    const out: Record<string, { target_name: string }> = {};
    for (const c of this.comms.values()) if (!targetName || c.targetName === targetName) out[c.id] = { target_name: c.targetName };
    return out;
  }
}
