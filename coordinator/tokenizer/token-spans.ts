// Where each token of an encoded text lies in it (TGI's /tokenize `start`/`stop`): the text decoded token by token,
// as streaming decodes it (special tokens as their text), each piece found in the input from where the last one
// ended — so a byte-level BPE token ("Ġworld"), a SentencePiece one ("▁Hello") and a chat template's special markers
// land where their text is, and the tokens that hold parts of one character share its span. A piece the input does
// not hold as such (an added BOS, an unknown word, a normalised letter) is an empty span where the input had got to.
import { StreamingDetokenizer } from './detokenizer.js';

export interface TokenSpan { id: number; text: string; start: number; stop: number }

export function tokenSpans(text: string, ids: readonly number[], pieces: readonly string[], decode: (ids: number[]) => string): TokenSpan[] {
  const detok = new StreamingDetokenizer({ decode });
  const out: TokenSpan[] = [];
  let pos = 0;
  let waiting: TokenSpan[] = [];  // parts of a character not decoded yet: they get its span
  const place = (spans: TokenSpan[], piece: string) => {
    const at = piece === '' ? -1 : text.indexOf(piece, pos);
    const [start, stop] = at < 0 ? [pos, pos] : [at, at + piece.length];
    for (const s of spans) [s.start, s.stop] = [start, stop];
    pos = stop;
  };
  ids.forEach((id, i) => {
    const span = { id, text: pieces[i]!, start: pos, stop: pos };
    out.push(span);
    const piece = detok.push(id);
    if (piece === '') waiting.push(span);
    else {
      place([...waiting, span], piece);
      waiting = [];
    }
  });
  if (waiting.length > 0) place(waiting, detok.flush());
  return out;
}
