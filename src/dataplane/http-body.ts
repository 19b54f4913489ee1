/** The client's request body on its way upstream: counted, capped (413), and teed to RequestMirror backends. */
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import type { AccessRecord } from './access-log.ts';
import type { AnyRequest } from './http-types.ts';

export class BodyTooLarge extends Error {
  readonly code = 'BODY_TOO_LARGE';
}

/** The client's request body: counted, capped at maxBodyBytes, and teed to mirrors (which may lag and be dropped). */
export class BodySource {
  readonly stream: PassThrough;
  readonly #tees: PassThrough[] = [];

  constructor(req: AnyRequest, max: number, x: { record: AccessRecord }) {
    const tees = this.#tees;
    const counter = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        x.record.bytesIn += chunk.length;
        if (max > 0 && x.record.bytesIn > max) return cb(new BodyTooLarge('request body too large'));
        for (const t of tees) {
          // A mirror that cannot keep up loses its copy rather than slowing the real request down.
          if (t.writableLength > 1 << 20) t.destroy();
          else if (!t.destroyed) t.write(chunk);
        }
        cb(null, chunk);
      },
      flush(cb: TransformCallback) {
        for (const t of tees) t.end();
        cb();
      },
    });
    this.stream = new PassThrough();
    counter.on('error', (err) => {
      for (const t of tees) t.destroy();
      this.stream.destroy(err);
    });
    req.on('error', (err: Error) => counter.destroy(err));
    (req as NodeJS.ReadableStream).pipe(counter).pipe(this.stream);
  }

  tee(): PassThrough {
    const t = new PassThrough();
    t.on('error', () => {});
    this.#tees.push(t);
    return t;
  }
}
