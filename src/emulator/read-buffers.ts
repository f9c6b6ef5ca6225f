/**
 * Buffers for the bodies of Get Blob responses, reused from one response to the next.
 *
 * A fresh 1 MiB buffer per read is new memory, faulted in page by page, then left to the garbage
 * collector. That cost more than the file reads themselves: 480 MiB of 1 MiB ranges read from
 * page-cached extents, 16 at a time, took 410 ms into fresh buffers and 125 ms into reused ones.
 * The emulator stands in for Azure's servers, whose cost is not the backup's; on one machine it
 * takes cores from the data proxy it serves.
 */
export class ReadBuffers {
  readonly size: number;
  readonly #spare: Buffer[] = [];
  readonly #max: number;

  /** Buffers of `size` bytes; at most `max` kept spare (more are left to the garbage collector). */
  constructor(size: number, max: number) {
    this.size = size;
    this.#max = max;
  }

  /** A buffer of `size` bytes, whose content is whatever it held before. */
  take(): Buffer {
    return this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Gives a buffer back once nothing refers to it any more (its socket write has completed). */
  give(buffer: Buffer): void {
    if (buffer.length === this.size && this.#spare.length < this.#max) this.#spare.push(buffer);
  }
}
