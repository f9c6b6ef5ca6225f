// Entry point. Node's compile cache keeps the type-stripped, compiled form of every module (keyed by
// content), which cuts start-up from ~160 ms to ~90 ms (`/usr/bin/time bin/goldsnap --help`, 2
// cores): it counts for short commands and for the worker threads each backup starts (they find
// the cache through the environment). It must be on before the program's modules load, hence the
// dynamic import.
import { enableCompileCache, getCompileCacheDir } from 'node:module';

enableCompileCache?.();
const cacheDir = getCompileCacheDir?.();
if (cacheDir) process.env.NODE_COMPILE_CACHE ??= cacheDir;
await import('./program.ts');
