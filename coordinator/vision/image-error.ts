// Why an image of a request cannot be used, with the HTTP status it answers with: 413 when it is too large (bytes or
// pixels), 422 otherwise (the server's status for a request whose content is not acceptable, as for any other field).
export class ImageInputError extends Error {
  override name = 'ImageInputError';
  constructor(readonly status: 413 | 422, message: string) {
    super(message);
  }
}
