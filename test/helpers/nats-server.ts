// Starts a throwaway nats-server on a free localhost port for integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServerHandle {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** Extra nats-server arguments, e.g. ['-js'] for JetStream. */
  args?: string[];
  /** How long to wait for the port to accept connections. */
  startTimeoutMs?: number;
  /** Listen on this port (e.g. to restart a server where its clients reconnect); default: a free one. */
  port?: number;
}

// /usr/sbin is where the Debian package puts it, and not every PATH has it.
const BINARIES = ['nats-server', '/usr/sbin/nats-server', '/usr/local/bin/nats-server'];

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-nats-'));
  let lastError: unknown;
  // A free port can be taken between probing and binding; try a few.
  for (let attempt = 0; attempt < (opts.port ? 1 : 3); attempt++) {
    const port = opts.port ?? await freePort();
    try {
      const child = await spawnServer(port, dir, opts.args ?? []);
      await waitForPort(port, child, opts.startTimeoutMs ?? 10_000);
      return handle(child, port, dir);
    } catch (err) {
      lastError = err;
      if (err instanceof BinaryNotFound) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

class BinaryNotFound extends Error {}

function handle(child: ChildProcess, port: number, dir: string): NatsServerHandle {
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let stopped: Promise<void> | undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop() {
      stopped ??= (async () => {
        process.off('exit', killOnExit);
        await terminate(child);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

async function spawnServer(port: number, dir: string, args: string[]): Promise<ChildProcess> {
  for (const bin of BINARIES) {
    const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), ...args], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const spawned = await new Promise<boolean>((resolve, reject) => {
      child.once('spawn', () => resolve(true));
      child.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve(false) : reject(err)));
    });
    if (spawned) return child;
  }
  throw new BinaryNotFound('nats-server binary not found on PATH (install it: apt-get install -y nats-server)');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nats-server exited (${child.exitCode ?? child.signalCode}) before listening:\n${stderr}`);
    }
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  await terminate(child);
  throw new Error(`nats-server did not accept connections on port ${port} within ${timeoutMs} ms:\n${stderr}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
