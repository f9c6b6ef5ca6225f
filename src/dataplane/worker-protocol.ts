/** Messages between the pipeline and its chunk workers (see chunk-worker.ts). */
export type WorkerRequest =
  | { op: 'digest'; seq: number; buffer: ArrayBuffer; length: number }
  | { op: 'seal'; seq: number; id: ArrayBuffer }
  | { op: 'drop'; seq: number }
  | { op: 'open'; seq: number; id: ArrayBuffer; sealed: ArrayBuffer; compression: number; rawLength: number; where: string; verifyId: boolean };

export type WorkerReply = {
  seq: number;
  error?: string;
  zero?: boolean;
  id?: ArrayBuffer;
  sealed?: ArrayBuffer;
  compression?: number;
  rawLength?: number;
  plain?: ArrayBuffer;
};
