import type { TransferJobResult } from '../proxy/protocol.ts';
import type { Run, RunDisk } from './run-model.ts';

/**
 * Cross-region reads: a disk read by a proxy that does not run in the disk's region sends all its
 * changed data across regions (slower, and billed as egress). Each transfer records where its
 * proxy ran; a run with such a transfer carries a warning and counts it, and this process keeps
 * totals for the metrics endpoint.
 */
export const crossRegionTotals = { transfers: 0, bytes: 0 };

/** Records the proxy's region on the disk; warns on the run (once per disk) when it is not the disk's. */
export function recordTransferRegion(run: Run, disk: RunDisk, result: Partial<TransferJobResult>): void {
  if (!result.proxyRegion) return;
  disk.proxyRegion = result.proxyRegion;
  const diskRegion = result.diskRegion ?? disk.region;
  if (result.proxyRegion.toLowerCase() === diskRegion.toLowerCase()) return;
  const bytes = result.stats?.readBytes ?? 0;
  run.crossRegion = { transfers: (run.crossRegion?.transfers ?? 0) + 1, bytes: (run.crossRegion?.bytes ?? 0) + bytes };
  (run.warnings ??= []).push(
    `disk ${disk.diskName} (in ${diskRegion}) was read by a data proxy in ${result.proxyRegion}: ${bytes} bytes crossed regions; run its region's proxies there (--proxy-launcher aci, or a proxy started in ${diskRegion})`,
  );
  crossRegionTotals.transfers += 1;
  crossRegionTotals.bytes += bytes;
}
