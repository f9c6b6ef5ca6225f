import type { DiskReader } from './disk-io.ts';

/**
 * Caps how fast a reader reads, in bytes per second: a data proxy can leave bandwidth to the
 * customer's workloads (`--bandwidth`). Reads wait until the budget allows them.
 */
export function throttleReader(reader: DiskReader, bytesPerSecond: number): DiskReader {
  const started = Date.now();
  let granted = 0;
  return {
    sizeBytes: reader.sizeBytes,
    read: async (offset, into) => {
      granted += into.byteLength;
      const due = started + (granted / bytesPerSecond) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await reader.read(offset, into);
    },
    close: () => reader.close(),
  };
}
