/** The inputs (and text results) of this kernel session, for history_request. Session number 1 is this session. */
export interface HistoryRequest {
  output?: boolean;
  hist_access_type?: "range" | "tail" | "search";
  session?: number;
  start?: number;
  stop?: number;
  n?: number;
  pattern?: string;
  unique?: boolean;
}

type Entry = [session: number, line: number, input: string | [string, string | null]];

export class History {
  private readonly entries: { line: number; input: string; output: string | null }[] = [];

  add(line: number, input: string): void {
    this.entries.push({ line, input, output: null });
  }

  setOutput(line: number, output: string): void {
    const e = [...this.entries].reverse().find((x) => x.line === line);
    if (e) e.output = output;
  }

  query(req: HistoryRequest): Entry[] {
    let found = this.entries;
    if (req.hist_access_type === "range") {
      if (req.session !== undefined && req.session !== 0 && req.session !== 1) return [];
      found = found.filter((e) => e.line >= (req.start ?? 0) && (req.stop === undefined || req.stop === null || e.line < req.stop));
    } else if (req.hist_access_type === "search") {
      const re = globToRegExp(req.pattern ?? "*");
      found = found.filter((e) => re.test(e.input));
      if (req.unique) found = found.filter((e, i) => !found.slice(i + 1).some((x) => x.input === e.input));
    }
    if (req.hist_access_type !== "range" && req.n !== undefined && req.n !== null) found = found.slice(-req.n);
    return found.map((e) => [1, e.line, req.output ? [e.input, e.output] : e.input]);
  }
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[\\s\\S]*").replace(/\?/g, "[\\s\\S]");
  return new RegExp(`^${body}$`);
}
