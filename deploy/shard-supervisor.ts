// Runs the N shard processes of one group and restarts the whole group when any of them dies: the
// survivors may be blocked in a collective with the dead rank, so a clean restart is the safe move. A shard that
// fails while loading says why over its IPC channel, so the reason reaches whoever waits for the group to start
// (waitForShards) instead of a timeout.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

export interface ShardProcessOptions {
  natsUrl: string;
  cluster: string;
  modelDir: string;
  worldSize: number;
  kvBlocks: number;
  blockSize: number;
  adapterSlots: number;
  maxLoraRank: number;
  /** Host-RAM tier per shard (bytes); default: the shard's own default. */
  adapterHostCacheBytes?: number;
  heartbeatMs: number;
  logLevel: string;
  device?: 'cpu' | 'cuda';
  /** CPU backend threads per shard process (already resolved: > 0). */
  cpuThreads?: number;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** The draft model's directory (--speculative-model), loaded by rank 0. */
  draftModelDir?: string;
  /** How the ranks exchange tensors; default: the shard's own default (shm). */
  collective?: 'shm' | 'nccl';
  otlpEndpoint?: string;
  /** Where the shards' stdout/stderr (JSON logs) go; default: this process's stdout/stderr. */
  output?: { write(chunk: string | Uint8Array): unknown };
}

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

export class ShardSupervisor {
  private procs: ChildProcess[] = [];
  private stopping = false;
  private restarts = 0;

  constructor(private readonly o: ShardProcessOptions, private readonly log: Logger,
    /** A shard died: fail in-flight work now; the group is restarted right after. */
    private readonly onLost: (reason: string) => void) {}

  get restartCount(): number {
    return this.restarts;
  }

  pids(): number[] {
    return this.procs.map((p) => p.pid ?? -1);
  }

  start(): void {
    // Fresh per start: the shm segment's name, and the group id of the nccl collective's unique-id exchange, so a
    // restarted group never attaches to the segment or joins the NCCL id of the group it replaces.
    const shm = `/weft-${process.pid}-${randomBytes(4).toString('hex')}`;
    this.procs = Array.from({ length: this.o.worldSize }, (_, rank) => this.spawnRank(rank, shm));
  }

  private spawnRank(rank: number, shmName: string): ChildProcess {
    const o = this.o;
    const args = [CLI, 'shard', '--model-dir', o.modelDir, '--rank', String(rank), '--world-size', String(o.worldSize),
      '--nats-url', o.natsUrl, '--cluster', o.cluster, '--shm-name', shmName, '--kv-cache-blocks', String(o.kvBlocks),
      '--block-size', String(o.blockSize), '--adapter-slots', String(o.adapterSlots), '--max-lora-rank', String(o.maxLoraRank),
      '--heartbeat-ms', String(o.heartbeatMs), '--log-level', o.logLevel];
    if (o.otlpEndpoint) args.push('--otlp-endpoint', o.otlpEndpoint);
    if (o.device) args.push('--device', o.device);
    if (o.cpuThreads) args.push('--cpu-threads', String(o.cpuThreads));
    if (o.dtype) args.push('--dtype', o.dtype);
    if (o.draftModelDir) args.push('--draft-model-dir', o.draftModelDir);
    if (o.collective) args.push('--collective', o.collective);
    if (o.adapterHostCacheBytes !== undefined) args.push('--adapter-host-cache-bytes', String(o.adapterHostCacheBytes));
    const out = o.output;
    const child = spawn(process.execPath, args, { stdio: ['ignore', out ? 'pipe' : 'inherit', out ? 'pipe' : 'inherit', 'ipc'] });
    let startError = '';
    child.on('message', (m: { type?: string; message?: string }) => {
      if (m?.type === 'start_failed' && typeof m.message === 'string') startError = `: ${m.message}`;
    });
    if (out) {
      child.stdout?.on('data', (d: Buffer) => out.write(d));
      child.stderr?.on('data', (d: Buffer) => out.write(d));
    }
    child.once('exit', (code, signal) => {
      if (this.stopping || !this.procs.includes(child)) return;
      const reason = `shard ${rank} (pid ${child.pid}) exited (${signal ?? `code ${code}`})${startError}`;
      this.log.error({ rank, code, signal }, 'shard process died; restarting the shard group');
      this.restartAll(reason);
    });
    return child;
  }

  /** Restarts the group unless a restart is already under way (the loss was reported after that restart began). */
  restartGroup(reason: string): void {
    if (this.stopping || this.procs.length === 0) return;
    this.log.error({ reason }, 'restarting the shard group');
    this.restartAll(reason, false);
  }

  private restartAll(reason: string, report = true): void {
    const old = this.procs;
    this.procs = [];
    for (const p of old) if (p.exitCode === null) p.kill('SIGKILL');
    if (report) this.onLost(reason);
    this.restarts++;
    setTimeout(() => { if (!this.stopping) this.start(); }, Math.min(5000, 200 * this.restarts));
  }

  /** Asks every shard to exit, then kills what is left. */
  async stop(timeoutMs = 5000): Promise<void> {
    this.stopping = true;
    await Promise.all(this.procs.map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      const t = setTimeout(() => { p.kill('SIGKILL'); }, timeoutMs);
      p.once('exit', () => { clearTimeout(t); resolve(); });
      p.kill('SIGTERM');
    })));
  }
}

/**
 * Waits until the group is ready, failing at once with `failure()` when that says a shard died first (a bad
 * model directory, an unusable device) rather than after timeoutMs of restarts that fail the same way.
 */
export async function waitForShards(group: { isReady(): boolean }, failure: () => string | null, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!group.isReady()) {
    const why = failure();
    if (why !== null) throw new Error(`a shard failed to start: ${why}`);
    if (Date.now() > deadline) throw new Error(`shards did not become ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
