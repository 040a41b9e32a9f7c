// A chat request with tools against a running server, answered whole and streamed: shared by the tests of
// weft's own call format (structured-output) and of the native ones (native-tools).
import assert from 'node:assert/strict';

export type Call = { id: string; type: string; function: { name: string; arguments: string } };
export type Post = (path: string, body: unknown) => Promise<{ status: number; text: string }>;

/**
 * The whole answer's tool_calls (null when it was cut short by max_tokens: then it is text), after checking that
 * it is calls only (finish_reason tool_calls, content null, one call unless `parallel`, each call's id matches
 * `id`, its arguments pass `checkArgs`) and that the streamed answer sends the same calls as deltas and no text.
 */
export async function wholeAndStreamedCalls(post: Post, body: Record<string, unknown>, parallel: boolean,
  id: RegExp, checkArgs: (call: Call) => void): Promise<Call[] | null> {
  const whole = await post('/v1/chat/completions', body);
  assert.equal(whole.status, 200, whole.text);
  const c = JSON.parse(whole.text).choices[0];
  if (c.finish_reason === 'length') return null;  // a call cut short comes back as text (not the point here)
  assert.equal(c.finish_reason, 'tool_calls', whole.text);
  assert.equal(c.message.content, null);
  const calls = c.message.tool_calls as Call[];
  assert.ok(calls.length >= 1 && (parallel || calls.length === 1), whole.text);
  for (const call of calls) {
    assert.match(call.id, id);
    assert.equal(call.type, 'function');
    checkArgs(call);
  }
  const streamed = await post('/v1/chat/completions', { ...body, stream: true });
  const chunks = streamed.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
  const deltas = chunks.flatMap((ch) => ch.choices[0].delta.tool_calls ?? []);
  assert.deepEqual(deltas.map((d: { index: number; function: unknown }) => [d.index, d.function]), calls.map((x, i) => [i, x.function]));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
  assert.equal(chunks.map((ch) => ch.choices[0].delta.content ?? '').join(''), '');
  return calls;
}
