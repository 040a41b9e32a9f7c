import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PickleError, TorchBinError, UnsafePickleError, ZipError, loadTorchBin } from '../../shard/formats/index.js';
import { PickleGlobal, unpickle, type UnpickleOptions } from '../../shard/formats/pickle-vm.js';
import { ZipReader, crc32 } from '../../shard/formats/zip-reader.js';

const DIR = fileURLToPath(new URL('../../../test/fixtures/torch-bin/', import.meta.url));
const fixture = (name: string): string => join(DIR, name);
type Expected = Record<string, Record<string, { dtype: string; shape: number[]; data: number[] }>>;
const EXPECTED = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as Expected;

function assertMatchesExpected(file: string, expectedKey = file): void {
  const got = loadTorchBin(fixture(file));
  const want = EXPECTED[expectedKey]!;
  assert.deepEqual([...got.keys()].sort(), Object.keys(want).sort());
  for (const [name, w] of Object.entries(want)) {
    const t = got.get(name)!;
    assert.equal(t.dtype, w.dtype, `${file} ${name} dtype`);
    assert.deepEqual(t.shape, w.shape, `${file} ${name} shape`);
    assert.deepEqual([...t.data], w.data.map((v) => Math.fround(v)), `${file} ${name} data`);
  }
}

test('fp32 PEFT state dict (a plain dict, STORED entries) loads exactly', () => {
  assertMatchesExpected('fp32.bin');
  const t = loadTorchBin(fixture('fp32.bin'));
  assert.deepEqual(t.get('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight')!.shape, [6, 4]);
});

test('DEFLATE entries and zip64 records load the same tensors', () => {
  assertMatchesExpected('deflate.bin', 'fp32.bin');
  assertMatchesExpected('zip64.bin', 'fp32.bin');
});

test('fp16 and bf16 storages, OrderedDict with _metadata (BUILD) and a Parameter', () => {
  assertMatchesExpected('half.bin');
  const t = loadTorchBin(fixture('half.bin'));
  assert.equal(t.get('half.weight')!.data[2], 65504);
  assert.equal(t.get('half.weight')!.data[3], 2 ** -24); // f16 subnormal
  assert.equal(t.get('bf16.weight')!.data[2], 2 ** -130); // f32 subnormal kept by bf16
});

test('views: transposed with a storage offset, row slices, shared storage', () => {
  assertMatchesExpected('strided.bin');
  const t = loadTorchBin(fixture('strided.bin'));
  // storage = 0..39; transposed view offset 4, size [3, 5], stride [1, 3]
  assert.deepEqual([...t.get('transposed')!.data], [4, 7, 10, 13, 16, 5, 8, 11, 14, 17, 6, 9, 12, 15, 18]);
  assert.deepEqual([...t.get('rows')!.data], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
  assert.deepEqual([...t.get('scalar_like')!.data], [39]);
});

test('a view past the end of its storage is refused', () => {
  assert.throws(() => loadTorchBin(fixture('bad_view.bin')), (e: unknown) => {
    assert.ok(e instanceof TorchBinError);
    assert.match(e.message, /bad_view\.bin: tensor 'w': view \(offset 2, size \[2,2\], stride \[2,1\]\) reaches element 5 of a 4-element storage/);
    return true;
  });
});

test('os.system in the pickle is refused as UnsafePickleError naming the global', () => {
  assert.throws(() => loadTorchBin(fixture('malicious_os_system.bin')), (e: unknown) => {
    assert.ok(e instanceof UnsafePickleError, String(e));
    assert.equal(e.global, 'os.system');
    assert.match(e.message, /malicious_os_system\.bin: refusing to load global 'os\.system'/);
    return true;
  });
  assert.equal(existsSync('/tmp/weft_pwned_os_system'), false);
});

test('builtins.eval through STACK_GLOBAL (protocol 4) is refused', () => {
  assert.throws(() => loadTorchBin(fixture('malicious_eval.bin')), (e: unknown) => {
    assert.ok(e instanceof UnsafePickleError, String(e));
    assert.equal(e.global, 'builtins.eval');
    assert.match(e.message, /malicious_eval\.bin: refusing to load global 'builtins\.eval'/);
    return true;
  });
  assert.equal(existsSync('/tmp/weft_pwned_eval'), false);
});

test('truncated, corrupt and legacy files give clear errors', () => {
  assert.throws(() => loadTorchBin(fixture('truncated.bin')), /truncated\.bin: not a PyTorch zip checkpoint: .*end-of-central-directory record not found/);
  assert.throws(() => loadTorchBin(fixture('corrupt_crc.bin')), (e: unknown) => e instanceof ZipError && /corrupt_crc\.bin: entry 'fp32\/data\/0': CRC-32 mismatch/.test(e.message));
  assert.throws(() => loadTorchBin(fixture('legacy.bin')), /legacy\.bin: legacy \(pre-1\.6, non-zip\) torch\.save format is not supported/);
  assert.throws(() => loadTorchBin(fixture('expected.json')), /expected\.json: not a PyTorch zip checkpoint/);
  assert.throws(() => loadTorchBin(fixture('nope.bin')), /nope\.bin: not a PyTorch zip checkpoint: .*cannot open/);
});

test('zip reader lists entries, reads them CRC-checked', () => {
  const z = ZipReader.open(fixture('zip64.bin'));
  const names = z.entries().map((e) => e.name);
  assert.deepEqual(names, ['zip64/data.pkl', 'zip64/byteorder', 'zip64/data/0', 'zip64/data/1', 'zip64/data/2', 'zip64/data/3', 'zip64/version', 'zip64/.data/serialization_id']);
  assert.equal(new TextDecoder().decode(z.read('zip64/byteorder')), 'little');
  assert.throws(() => z.read('zip64/nothing'), /no entry named 'zip64\/nothing'/);
  z.close();
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

// ---- the pickle machine on hand-written streams ----

const enc = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const binunicode = (s: string): number[] => [0x58, s.length, 0, 0, 0, ...enc(s)];
const opts = (allowed: string[], calls: string[] = []): UnpickleOptions => ({
  where: 'mem.pkl',
  allowedGlobals: new Set(allowed),
  call(g: PickleGlobal, args: unknown[]) {
    calls.push(g.name);
    return { called: g.name, args };
  },
  persistentLoad: (pid) => ({ pid }),
});
const run = (bytes: number[], o: UnpickleOptions): unknown => unpickle(Uint8Array.from(bytes), o);

test('pickle VM: plain data through protocol 2 and 4 opcodes', () => {
  // {'a': [1, -2, 300, 70000, True, None, 1.5], 'b': ('x', 'y')}
  const p2 = [0x80, 2, 0x7d, 0x71, 0, 0x28, ...binunicode('a'), 0x5d, 0x28, 0x4b, 1, 0x4a, 0xfe, 0xff, 0xff, 0xff, 0x4d, 0x2c, 0x01,
    0x4a, 0x70, 0x11, 0x01, 0x00, 0x88, 0x4e, 0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x65, ...binunicode('b'),
    ...binunicode('x'), ...binunicode('y'), 0x86, 0x75, 0x2e];
  const v = run(p2, opts([])) as Map<string, unknown>;
  assert.deepEqual(v.get('a'), [1, -2, 300, 70000, true, null, 1.5]);
  assert.deepEqual(v.get('b'), ['x', 'y']);
  // protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, BINGET, LONG1
  const p4 = [0x80, 4, 0x95, 20, 0, 0, 0, 0, 0, 0, 0, 0x8c, 3, ...enc('abc'), 0x94, 0x68, 0, 0x8a, 2, 0x00, 0x80, 0x87, 0x2e];
  assert.deepEqual(run(p4, opts([])), ['abc', 'abc', -32768]);
});

test('pickle VM: every route to a global is checked against the allow-list', () => {
  const refused = (bytes: number[], global: string): void => {
    const calls: string[] = [];
    assert.throws(() => run(bytes, opts(['collections.OrderedDict'], calls)), (e: unknown) => e instanceof UnsafePickleError && e.global === global);
    assert.deepEqual(calls, [], 'nothing may be called');
  };
  refused([0x80, 2, 0x63, ...enc('subprocess\nPopen\n'), 0x29, 0x52, 0x2e], 'subprocess.Popen');
  refused([0x80, 4, 0x8c, 7, ...enc('posixpt'), 0x8c, 6, ...enc('system'), 0x93, 0x2e], 'posixpt.system');
  refused([0x80, 2, 0x28, ...binunicode('ls'), 0x69, ...enc('os\nsystem\n'), 0x2e], 'os.system'); // INST
  refused([0x80, 2, 0x63, ...enc('__builtin__\ngetattr\n'), 0x2e], '__builtin__.getattr');
  assert.throws(() => run([0x80, 2, 0x82, 1, 0x2e], opts([])), UnsafePickleError); // EXT1
  const calls: string[] = [];
  const ok = run([0x80, 2, 0x63, ...enc('collections\nOrderedDict\n'), 0x29, 0x52, 0x2e], opts(['collections.OrderedDict'], calls));
  assert.deepEqual(ok, { called: 'collections.OrderedDict', args: [] });
});

test('pickle VM: malformed streams fail with PickleError, not garbage', () => {
  const bad = (bytes: number[], re: RegExp): void => {
    assert.throws(() => run(bytes, opts([])), (e: unknown) => e instanceof PickleError && !(e instanceof UnsafePickleError) && re.test(e.message));
  };
  bad([0x80, 2, 0x58, 10, 0, 0, 0, 0x61], /mem\.pkl: pickle data truncated/);
  bad([0x80, 2, 0x4e], /pickle data truncated/);
  bad([0x80, 2, 0xff, 0x2e], /unknown or unsupported pickle opcode.*0xff/);
  bad([0x80, 2, 0x68, 7, 0x2e], /memo key 7 not found/);
  bad([0x80, 2, 0x2e], /stack underflow/);
  bad([0x80, 2, 0x4e, 0x74, 0x2e], /MARK expected/);
  bad([0x80, 9, 0x2e], /unsupported pickle protocol 9/);
  bad([0x80, 2, 0x4e, 0x29, 0x52, 0x2e], /call target is not an allowed global/);
});
