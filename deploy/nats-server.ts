// Starts a private nats-server on 127.0.0.1 for `weft launch` when no --nats-url is given.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect as tcpConnect } from 'node:net';

export interface LocalNats {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/** Starts nats-server on `port` and waits until it accepts connections. */
async function spawnNats(binary: string, port: number): Promise<ChildProcess> {
  const proc = spawn(binary, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
  const spawnError = new Promise<never>((_, reject) => proc.once('error', (e) => reject(new Error(
    `could not start '${binary}' (${e.message}). Install it (Debian: apt-get install nats-server) or pass --nats-url`))));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited with code ${proc.exitCode}: ${stderr}`);
    const ok = await Promise.race([accepts(port), spawnError]);
    if (ok) return proc;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`nats-server did not accept connections on 127.0.0.1:${port} within 10 s: ${stderr}`);
}

/**
 * The private nats-server of `weft launch`. Should it die (OOM-killed, killed by hand), it is started again on the
 * same port, so the coordinator and the shards — which reconnect forever — carry on without an operator.
 * `onRestart` hears about each restart (or a failed one).
 */
export async function startLocalNats(binary = 'nats-server', onRestart?: (err?: Error) => void): Promise<LocalNats> {
  const port = await freePort();
  let stopping = false;
  const handle: LocalNats = {
    url: `nats://127.0.0.1:${port}`,
    process: await spawnNats(binary, port),
    stop: () => new Promise<void>((resolve) => {
      stopping = true;
      const proc = handle.process;
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
  const respawn = (): void => {
    setTimeout(() => {
      if (stopping) return;
      spawnNats(binary, port).then((next) => {
        handle.process = next;
        onRestart?.();
        watch(next);
      }, (err: Error) => { onRestart?.(err); respawn(); });
    }, 500);
  };
  const watch = (proc: ChildProcess): void => { proc.once('exit', () => { if (!stopping) respawn(); }); };
  watch(handle.process);
  return handle;
}
