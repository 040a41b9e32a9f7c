// An adapter's files are read on a shard worker thread, not in the shard's mailbox: while one adapter's
// weights cannot be read yet (a FIFO nobody has opened for writing), other requests — base model and another
// adapter — keep decoding and finish; that load then fails alone, and a retry with the weights in a plain
// file answers exactly as the same adapter under another name. Before, the
// read ran in the mailbox and every step of every request waited behind it (on a GPU: inter-token p99 of
// 260-290 ms in a serve run with 32 and 128 adapters, each load a stall).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, copyFileSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { ensureDemoAdapter } from '../../deploy/demo-model/index.js';

const hasMkfifo = spawnSync('bash', ['-c', 'command -v mkfifo'], { encoding: 'utf8' }).status === 0;
let server: Launched;
let adapterRoot: string;

before(async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-offthread-'));
  adapterRoot = join(cacheDir, 'adapters');
  server = await launch({ ...parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'silent',
    '--adapter-root', adapterRoot], {}) }, { cacheDir });
  await ensureDemoAdapter(join(cacheDir, 'demo-model'), adapterRoot, 'style', 3);
});
after(async () => { await server.close(); }, { timeout: 60_000 });

const complete = async (body: Record<string, unknown>) => {
  const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'The shard', max_tokens: 24, temperature: 0, ignore_eos: true, ...body }) });
  return { status: r.status, json: await r.json() as { choices: { text: string }[] } };
};

test('other requests decode while an adapter\'s weights are still being read; that load fails alone, a retry loads',
  { skip: hasMkfifo ? false : 'mkfifo is not installed', timeout: 120_000 }, async () => {
    // 'slow' = 'style' with its weights behind a FIFO: opening it for reading blocks until a writer comes.
    const slow = join(adapterRoot, 'slow');
    const fifoPath = join(slow, 'adapter_model.safetensors');
    mkdirSync(slow);
    copyFileSync(join(adapterRoot, 'style', 'adapter_config.json'), join(slow, 'adapter_config.json'));
    assert.equal(spawnSync('mkfifo', [fifoPath]).status, 0);
    // A writer that closes at once: the blocked read ends with nothing (the reader needs a seekable file anyway).
    // Opened without blocking, retried until the reader is there: a blocking open with no reader would hang this
    // process, which runs the coordinator too.
    const release = async () => {
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
        try {
          closeSync(openSync(fifoPath, constants.O_WRONLY | constants.O_NONBLOCK));
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;  // ENXIO: no reader yet
        }
      }
      throw new Error('the adapter\'s reader never opened its weights file');
    };

    let slowDone = false;
    const slowReq = complete({ model: 'slow', adapter_source: 'local' }).finally(() => { slowDone = true; });
    let others: Awaited<ReturnType<typeof complete>>[];
    let timer: NodeJS.Timeout | undefined;
    try {
      // Base-model and other-adapter requests, sent while the shard is blocked reading 'slow'.
      others = await Promise.race([
        Promise.all([complete({}), complete({ model: 'style', adapter_source: 'local' }), complete({ prompt: 'Adapters' })]),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('requests stalled behind the adapter read')), 60_000); }),
      ]);
      assert.equal(slowDone, false, 'the slow adapter cannot have loaded: nothing wrote its weights yet');
    } catch (e) {
      await release().catch(() => undefined);  // a shard left blocked on the FIFO could not close
      rmSync(fifoPath, { force: true });  // and no later reader may block on it
      throw e;
    } finally {
      clearTimeout(timer);
    }
    await release();
    for (const o of others) assert.equal(o.status, 200, JSON.stringify(o.json));

    const failed = await slowReq;  // released: that load fails alone, with its reason
    assert.equal(failed.status, 424, JSON.stringify(failed.json));
    assert.match(JSON.stringify(failed.json), /failed to load/);
    // The weights as a plain file (a new revision of the directory): the retry loads them, same tokens as 'style'.
    rmSync(fifoPath);
    copyFileSync(join(adapterRoot, 'style', 'adapter_model.safetensors'), fifoPath);
    const got = await complete({ model: 'slow', adapter_source: 'local' });
    assert.equal(got.status, 200, JSON.stringify(got.json));
    assert.equal(got.json.choices[0]!.text, others[1]!.json.choices[0]!.text, 'the same weights give the same tokens');
    assert.notEqual(got.json.choices[0]!.text, others[0]!.json.choices[0]!.text, 'and not the base model\'s');
  });
