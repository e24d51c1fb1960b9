// One read buffer for every relayed TCP socket of the process, through Node's `onread` option.
//
// By default Node allocates a fresh 64 KiB buffer for every read of every socket, shrinks it to
// the bytes read, wraps it in a Buffer object and pushes it through the stream machinery to a
// 'data' listener. With `onread`, the socket reads into a buffer we give it and calls us with the
// byte count: no allocation and no stream layer per read. Measured through a relay on this
// 2-core machine: +40-50 % throughput and -35 % CPU per GB, both directions, at 64 KiB a read.
//
// A relay writes what it just read straight on to the other socket. Usually the kernel takes it
// all at once (the write completes synchronously) and the buffer is free again before the next
// read anywhere, so one buffer serves every socket. When a write cannot complete at once (the
// other side is slow), the pending write keeps pointing into the buffer: the buffer is then
// "captured". Its bytes are saved, the process moves on to a fresh buffer, and a socket that still
// reads into the captured one (each socket's next buffer is only switched after its next read)
// gets its bytes copied out and the captured bytes put back, all inside its read callback, before
// libuv can send anything: the pending write always sends what was written.
//
// Accepted sockets reach this path only through Node's private fields (src/node-internals.ts),
// so the whole path is an option (ReadPath): on by default only on the Node major the suite runs
// on, off with PORTPUB_SHARED_READS=0. The capture and put-back logic needs only a Writer, so
// unit tests drive it with a fake one (test/unit/shared-reads.test.ts).
import type { Socket } from 'node:net';
import { userBufferReads, type OnRead } from '../node-internals.js';

export type { OnRead } from '../node-internals.js';

/**
 * ReadPath is how relayed sockets are read: 'shared' (both sides into the shared buffer),
 * 'targets' (target sockets only, through the public `onread` option; clients by 'data' events:
 * what 'shared' falls back to where Node's internals are not as expected), 'data' (Node's own
 * buffers and 'data' events everywhere).
 */
export type ReadPath = 'shared' | 'targets' | 'data';

/** SHARED_READS_NODE_MAJORS are the Node major versions the shared path was tested on. */
export const SHARED_READS_NODE_MAJORS: readonly number[] = [20];

/**
 * tcpReadPath is the default read path: 'shared' on a tested Node major, 'data' elsewhere or when
 * PORTPUB_SHARED_READS=0; PORTPUB_SHARED_READS=1 asks for 'shared' on any version.
 */
export function tcpReadPath(
  env: NodeJS.ProcessEnv = process.env,
  nodeVersion: string = process.versions.node,
): ReadPath {
  const asked = env.PORTPUB_SHARED_READS;
  if (asked === '0') return 'data';
  if (asked === '1') return 'shared';
  return SHARED_READS_NODE_MAJORS.includes(Number(nodeVersion.split('.')[0])) ? 'shared' : 'data';
}

/** describeReadPath is the read path in words, for the startup log line. */
export function describeReadPath(path: ReadPath): string {
  switch (path) {
    case 'shared':
      return 'one shared read buffer (Node internals for accepted sockets; PORTPUB_SHARED_READS=0 turns it off)';
    case 'targets':
      return "shared read buffer for target sockets, 'data' events for clients";
    case 'data':
      return "Node's own read buffers and 'data' events";
  }
}

/**
 * Writer is what the capture logic needs of the socket a read is relayed to: a net.Socket, or a
 * fake in unit tests. A write either completes at once (writableLength back to what it was) or
 * stays pending, pointing into the buffer it was given, until the writer sends it or is destroyed.
 */
export interface Writer {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  readonly destroyed: boolean;
}

/** ReadCounters are the per-forwarder counts relayRead keeps (fields of TcpStats). */
export interface ReadCounters {
  sharedReadsCaptured: number;
  sharedReadsRestored: number;
}

/**
 * READ_BUFFER_SIZE: a read takes up to this much. 256 KiB measured best (iperf3 through portpub,
 * interleaved runs, Gbit/s and CPU s/GB): 64 KiB (libuv's own size) 6.6-9.7 and 0.80-1.19,
 * 128 KiB 7.1-10.8 and 0.73-1.07, 256 KiB 10.9-11.5 and 0.62-0.68, 512 KiB 9.1-9.4 and
 * 0.80-0.85, 1 MiB 10.1 and 0.70 (one stream). Bytes never read are never touched, so a
 * buffer costs only the pages its reads reach.
 */
export const READ_BUFFER_SIZE = 256 * 1024;

/**
 * SPARES_MAX bounds how many released read buffers, and how many copy buffers, are kept for
 * reuse (1 MiB each). Under bulk traffic a capture happens every few reads; allocating its two
 * buffers anew each time, the garbage (freed only by the next GC) pushed a relay's resident memory
 * up by ~100 MiB at 10 Gbit/s.
 */
const SPARES_MAX = 4;

interface Capture {
  /** A copy of the bytes a pending write still needs (the first `length` bytes of `saved`). */
  readonly saved: Buffer;
  readonly length: number;
  /** The socket whose pending write holds the buffer. */
  readonly writer: Writer;
  /** writer's entry in `sent` just after this write: its bytes end there. */
  readonly until: number;
}

let current: Buffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
const captures = new Map<Buffer, Capture>();
/**
 * sent counts the bytes relayRead wrote to each socket that holds a capture, from its first
 * capture on. A socket completes its writes in order and writableLength is what it has not
 * completed, so a capture is over once more bytes were written after it than are pending.
 */
const sent = new Map<Writer, number>();
const spares: Buffer[] = [];
const copySpares: Buffer[] = [];

/**
 * Counts for tests and diagnostics: accepted sockets set up for shared reads, buffers captured by
 * a pending write, reads whose bytes were copied out of a captured buffer and put back, and
 * buffers allocated after the first (spares not at hand).
 */
export const readBufferCounts = { acceptedShared: 0, captured: 0, restored: 0, allocated: 0 };

/** capturesHeld is how many buffers are set aside for pending writes now (tests). */
export function capturesHeld(): number {
  return captures.size;
}

/** readBuffer is the buffer the next read of any socket should land in. */
export function readBuffer(): Buffer {
  return current;
}

/**
 * relayRead writes the nread bytes a socket just read into buf on to `to`, and returns what
 * to.write() returned (false: pause the reader until 'drain').
 */
export function relayRead(
  to: Writer,
  nread: number,
  buf: Uint8Array,
  counts?: ReadCounters,
): boolean {
  const view = buf as Buffer;
  let chunk = view.subarray(0, nread);
  let copied = false;
  if (captures.size > 0) {
    const capture = captures.get(view);
    if (capture !== undefined) {
      if (over(capture)) {
        release(view);
      } else {
        // This read overwrote bytes a pending write still needs: take ours out, put those back.
        chunk = Buffer.from(chunk);
        capture.saved.copy(view, 0, 0, capture.length);
        readBufferCounts.restored++;
        if (counts) counts.sharedReadsRestored++;
        copied = true;
      }
    }
  }
  const ok = to.write(chunk);
  let total = sent.size > 0 ? sent.get(to) : undefined;
  if (total !== undefined) sent.set(to, (total += nread));
  // Anything still pending (this chunk, queued or part-sent) now points into the buffer.
  if (!copied && to.writableLength > 0) {
    capture(view, nread, to, total ?? nread);
    if (counts) counts.sharedReadsCaptured++;
  }
  return ok;
}

/** over tells whether a capture's write has completed, or can no longer happen. */
function over(c: Capture): boolean {
  // A destroyed socket's handle is closed at once: libuv drops its pending writes unsent.
  return c.writer.destroyed || c.writer.writableLength <= sent.get(c.writer)! - c.until;
}

/**
 * sweepCaptures releases every capture whose write is over. Captures are swept whenever a new one
 * is made; a pair that finishes sweeps too, so a quiet process keeps no closed socket here.
 */
export function sweepCaptures(): void {
  for (const [b, c] of captures) if (over(c)) release(b);
}

function capture(buf: Buffer, nread: number, writer: Writer, until: number): void {
  readBufferCounts.captured++;
  sweepCaptures();
  const saved = takeSpare(copySpares);
  buf.copy(saved, 0, 0, nread);
  captures.set(buf, { saved, length: nread, writer, until });
  sent.set(writer, until);
  if (buf === current) current = takeSpare(spares);
}

/** takeSpare takes a buffer from pool that no capture holds, or allocates one. */
function takeSpare(pool: Buffer[]): Buffer {
  let spare = pool.pop();
  // A read buffer can be captured again while it waits here (a socket still reading into it).
  while (spare !== undefined && captures.has(spare)) spare = pool.pop();
  if (spare !== undefined) return spare;
  readBufferCounts.allocated++;
  return Buffer.allocUnsafe(READ_BUFFER_SIZE);
}

function release(buf: Buffer): void {
  const { saved, writer } = captures.get(buf)!;
  captures.delete(buf);
  let writerHoldsMore = false;
  for (const c of captures.values()) if (c.writer === writer) writerHoldsMore = true;
  if (!writerHoldsMore) sent.delete(writer);
  if (copySpares.length < SPARES_MAX) copySpares.push(saved);
  if (buf !== current && spares.length < SPARES_MAX && !spares.includes(buf)) spares.push(buf);
}

/**
 * sharedReads makes an accepted socket that has not started reading (pauseOnConnect) read into
 * the shared buffer and call onRead, as `net.connect({ onread })` does. Returns false, changing
 * nothing, where Node's internals do not allow it; the caller then listens for 'data'.
 */
export function sharedReads(socket: Socket, onRead: OnRead): boolean {
  if (!userBufferReads(socket, readBuffer(), readBuffer, onRead)) return false;
  readBufferCounts.acceptedShared++;
  return true;
}
