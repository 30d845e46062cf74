/** Connection files: the ports, transport and signing key a kernel and its clients share. */
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { randomUUID } from "node:crypto";

export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme: string;
  kernel_name?: string;
}

export type Channel = "shell" | "iopub" | "stdin" | "control" | "hb";

export function readConnectionFile(path: string): ConnectionInfo {
  let info: Partial<ConnectionInfo>;
  try {
    info = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`connection file ${path}: ${(err as Error).message}`);
  }
  for (const field of ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"] as const) {
    if (!Number.isInteger(info[field])) throw new Error(`connection file ${path}: ${field} is missing or not an integer`);
  }
  if (typeof info.ip !== "string") throw new Error(`connection file ${path}: ip is missing`);
  return { transport: "tcp", key: "", signature_scheme: "hmac-sha256", ...info } as ConnectionInfo;
}

export function address(info: ConnectionInfo, channel: Channel): string {
  const port = info[`${channel}_port`];
  return info.transport === "ipc" ? `ipc://${info.ip}-${port}` : `tcp://${info.ip}:${port}`;
}

async function freePort(ip: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, ip, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** A fresh loopback connection (five free ports, a random key), written to `path`. */
export async function writeConnectionFile(path: string): Promise<ConnectionInfo> {
  const ip = "127.0.0.1";
  const ports = new Set<number>();
  while (ports.size < 5) ports.add(await freePort(ip));
  const [shell_port, iopub_port, stdin_port, control_port, hb_port] = [...ports];
  const info: ConnectionInfo = { transport: "tcp", ip, shell_port, iopub_port, stdin_port, control_port, hb_port, key: randomUUID(), signature_scheme: "hmac-sha256" };
  writeFileSync(path, JSON.stringify(info, null, 2), { mode: 0o600 });
  return info;
}
