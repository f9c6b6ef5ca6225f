import type { DiskReader, DiskWriter } from './disk-io.ts';

/**
 * Caps how fast a disk is read or written, in bytes per second: a data proxy can leave bandwidth
 * to the customer's workloads (`--bandwidth`). Each call waits until the budget allows it.
 */
function budget(bytesPerSecond: number): (bytes: number) => Promise<void> {
  const started = Date.now();
  let granted = 0;
  return async (bytes) => {
    granted += bytes;
    const wait = started + (granted / bytesPerSecond) * 1000 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  };
}

export function throttleReader(reader: DiskReader, bytesPerSecond: number): DiskReader {
  const take = budget(bytesPerSecond);
  return {
    sizeBytes: reader.sizeBytes,
    ...(reader.readAhead ? { readAhead: reader.readAhead } : {}),
    read: async (offset, into) => {
      await take(into.byteLength);
      await reader.read(offset, into);
    },
    close: () => reader.close(),
  };
}

export function throttleWriter(writer: DiskWriter, bytesPerSecond: number): DiskWriter {
  const take = budget(bytesPerSecond);
  return {
    zeroFilled: writer.zeroFilled,
    write: async (offset, data) => {
      await take(data.byteLength);
      await writer.write(offset, data);
    },
    commit: () => writer.commit(),
    abort: () => writer.abort(),
  };
}
