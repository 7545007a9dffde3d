/**
 * CPU time and memory of a whole process tree, read from /proc, so Carrier (the
 * launcher and the server) and Postfix (master and every daemon it forks) are
 * measured the same way.
 */

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** The pid and every live descendant of it. */
export async function processTree(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for await (const entry of Deno.readDir("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    const stat = await readStat(pid);
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(pid);
    children.set(stat.ppid, list);
  }
  const out: number[] = [];
  const visit = (pid: number) => {
    out.push(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  return out;
}

interface Stat {
  ppid: number;
  /** utime + stime of the process itself, in ticks. */
  own: number;
  /** cutime + cstime: what its reaped children used, in ticks. */
  reaped: number;
}

async function readStat(pid: number): Promise<Stat | undefined> {
  try {
    const text = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name, which is in parentheses and may hold spaces.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return {
      ppid: Number(f[1]),
      own: Number(f[11]) + Number(f[12]),
      reaped: Number(f[13]) + Number(f[14]),
    };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds used by the tree so far: each live process's own time plus what
 * the root has reaped. A daemon that exits is reaped by its parent in the tree,
 * so its time moves into the root's count and is never lost or counted twice.
 */
export async function treeCpuSeconds(root: number): Promise<number> {
  let ticks = 0;
  for (const pid of await processTree(root)) {
    const stat = await readStat(pid);
    if (!stat) continue;
    ticks += stat.own;
    if (pid === root) ticks += stat.reaped;
  }
  return ticks / TICKS_PER_SECOND;
}

/** Proportional set size of the tree in KiB (shared pages split among their users). */
export async function treePssKiB(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    try {
      const text = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`);
      total += Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    } catch { /* exited */ }
  }
  return total;
}

/** Sum of the peak resident sets (VmHWM) of the given processes, in KiB. */
export async function peakRssKiB(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    try {
      const text = await Deno.readTextFile(`/proc/${pid}/status`);
      total += Number(/VmHWM:\s+(\d+)/.exec(text)?.[1] ?? 0);
    } catch { /* exited */ }
  }
  return total;
}

/** Samples the tree's memory every `everyMs` until stopped; keeps the peaks. */
export class MemorySampler {
  peakPssKiB = 0;
  peakRssKiB = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;

  constructor(readonly root: number, readonly everyMs = 100) {}

  start(): void {
    this.#timer = setInterval(() => this.sample(), this.everyMs);
  }

  async sample(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const pids = await processTree(this.root);
      this.peakPssKiB = Math.max(this.peakPssKiB, await treePssKiB(pids));
      this.peakRssKiB = Math.max(this.peakRssKiB, await peakRssKiB(pids));
    } finally {
      this.#busy = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.sample();
  }
}
