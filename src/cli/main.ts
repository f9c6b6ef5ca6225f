// Entry point. Node's compile cache keeps the type-stripped, compiled form of every module (keyed by
// content), which cuts start-up from ~160 ms to ~90 ms (`/usr/bin/time bin/goldsnap --help`, 2
// cores): it counts for short commands. It must be on before the program's modules load, hence the
// dynamic import.
import { enableCompileCache, getCompileCacheDir } from 'node:module';
import { availableParallelism } from 'node:os';

// The chunk pipeline hashes, compresses and encrypts on libuv's thread pool, next to file reads
// and writes; its size is read once, when the pool starts (at the first asynchronous file or
// crypto call), so it is set here, before any. One thread per core for the chunks, two for I/O.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism() + 2));

enableCompileCache?.();
const cacheDir = getCompileCacheDir?.();
if (cacheDir) process.env.NODE_COMPILE_CACHE ??= cacheDir;
await import('./program.ts');
