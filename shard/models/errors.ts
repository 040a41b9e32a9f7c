/** A model directory, config field or architecture that weft cannot serve exactly. The message names it. */
export class UnsupportedModelError extends Error {
  override name = 'UnsupportedModelError';
}
