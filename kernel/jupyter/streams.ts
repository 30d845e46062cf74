/** Sends what cells write to process.stdout / process.stderr as `stream` messages; the kernel logs to the real stderr. */
type Write = typeof process.stdout.write;

export interface Streams {
  /** Writes a line to the kernel's own log (the real stderr). */
  log(line: string): void;
}

export function captureStreams(sink: (name: "stdout" | "stderr", text: string) => void): Streams {
  const realErr: Write = process.stderr.write.bind(process.stderr);
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    stream.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
      sink(name, text);
      const done = typeof encoding === "function" ? encoding : cb;
      if (typeof done === "function") process.nextTick(done as () => void);
      return true;
    }) as Write;
  }
  return { log: (line) => void realErr(`[m1 kernel] ${line}\n`) };
}
