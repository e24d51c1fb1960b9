// One read buffer for every relayed TCP socket of the process, through Node's `onread` option.
//
// By default Node allocates a fresh 64 KiB buffer for every read of every socket, shrinks it to
// the bytes read, wraps it in a Buffer object and pushes it through the stream machinery to a
// 'data' listener. With `onread`, the socket reads into a buffer we give it and calls us with the
// byte count: no allocation and no stream layer per read. Measured through a relay on this
// 2-core machine: +40-50 % throughput and -35 % CPU per GB, both directions.
//
// A relay writes what it just read straight on to the other socket. Usually the kernel takes it
// all at once (the write completes synchronously) and the buffer is free again before the next
// read anywhere, so one buffer serves every socket. When a write cannot complete at once (the
// other side is slow), the pending write keeps pointing into the buffer: the buffer is then
// "captured". Its bytes are saved, the process moves on to a fresh buffer, and a socket that still
// reads into the captured one (each socket's next buffer is only switched after its next read)
// gets its bytes copied out and the captured bytes put back, all inside its read callback, before
// libuv can send anything: the pending write always sends what was written.
import type { Socket } from 'node:net';

export const READ_BUFFER_SIZE = 64 * 1024;

/** SPARES_MAX bounds how many released buffers are kept for reuse (1 MiB). */
const SPARES_MAX = 16;

/** OnRead is a read callback: `this` is the socket that read nread bytes into buf. */
export type OnRead = (this: Socket, nread: number, buf: Uint8Array) => boolean;

interface Capture {
  /** The bytes a pending write still needs, as they were when written. */
  readonly saved: Buffer;
  /** The socket whose pending write holds the buffer. */
  readonly writer: Socket;
}

let current: Buffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
const captures = new Map<Buffer, Capture>();
const spares: Buffer[] = [];

/**
 * Counts for tests and diagnostics: accepted sockets set up for shared reads, buffers captured by
 * a pending write, reads whose bytes were copied out of a captured buffer and put back.
 */
export const readBufferCounts = { acceptedShared: 0, captured: 0, restored: 0 };

/** readBuffer is the buffer the next read of any socket should land in. */
export function readBuffer(): Buffer {
  return current;
}

/**
 * relayRead writes the nread bytes a socket just read into buf on to `to`, and returns what
 * to.write() returned (false: pause the reader until 'drain').
 */
export function relayRead(to: Socket, nread: number, buf: Uint8Array): boolean {
  const view = buf as Buffer;
  if (captures.size > 0) {
    const capture = captures.get(view);
    if (capture !== undefined) {
      if (!done(capture.writer)) {
        // This read overwrote bytes a pending write still needs: take ours out, put those back.
        const chunk = Buffer.from(view.subarray(0, nread));
        capture.saved.copy(view, 0);
        readBufferCounts.restored++;
        return to.write(chunk);
      }
      release(view);
    }
  }
  const ok = to.write(view.subarray(0, nread));
  // Anything still pending (this chunk, queued or part-sent) now points into the buffer.
  if (to.writableLength > 0) capture(view, nread, to);
  return ok;
}

/** done tells whether writer can no longer send from a buffer it was given. */
function done(writer: Socket): boolean {
  // A destroyed socket's handle is closed at once: libuv drops its pending writes unsent.
  return writer.writableLength === 0 || writer.destroyed;
}

function capture(buf: Buffer, nread: number, writer: Socket): void {
  readBufferCounts.captured++;
  for (const [b, c] of captures) if (done(c.writer)) release(b);
  captures.set(buf, { saved: Buffer.from(buf.subarray(0, nread)), writer });
  if (buf === current) {
    let next = spares.pop();
    while (next !== undefined && captures.has(next)) next = spares.pop();
    current = next ?? Buffer.allocUnsafe(READ_BUFFER_SIZE);
  }
}

function release(buf: Buffer): void {
  captures.delete(buf);
  if (buf !== current && spares.length < SPARES_MAX && !spares.includes(buf)) spares.push(buf);
}

/**
 * Node offers `onread` only to sockets it connects (net.connect); accepted sockets get the same
 * machinery through the private fields that option sets. ReadHooks are those fields, found on
 * the first accepted socket and checked to look as expected; when they do not (another Node
 * version), accepted sockets use 'data' events as before.
 */
interface ReadHooks {
  readonly kBuffer: symbol;
  readonly kBufferGen: symbol;
  readonly kBufferCb: symbol;
}

let hooks: ReadHooks | null | undefined;
let acceptedEnabled = true;

/** setAcceptedSharedReads turns the accepted-socket path off (tests of the 'data' fallback). */
export function setAcceptedSharedReads(enabled: boolean): void {
  acceptedEnabled = enabled;
}

type Hooked = Socket & Record<symbol, unknown> & { _handle?: { useUserBuffer?: unknown } };

function findHooks(socket: Hooked): ReadHooks | null {
  const bySymbol = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const kBuffer = bySymbol.get('kBuffer');
  const kBufferGen = bySymbol.get('kBufferGen');
  const kBufferCb = bySymbol.get('kBufferCb');
  if (kBuffer === undefined || kBufferGen === undefined || kBufferCb === undefined) return null;
  return { kBuffer, kBufferGen, kBufferCb };
}

/**
 * sharedReads makes an accepted socket that has not started reading (pauseOnConnect) read into
 * the shared buffer and call onRead, as `net.connect({ onread })` does. Returns false, changing
 * nothing, where that is not possible; the caller then listens for 'data'.
 */
export function sharedReads(socket: Socket, onRead: OnRead): boolean {
  if (!acceptedEnabled) return false;
  const s = socket as Hooked;
  hooks ??= findHooks(s);
  const handle = s._handle;
  if (
    hooks === null ||
    handle === undefined ||
    typeof handle.useUserBuffer !== 'function' ||
    s[hooks.kBuffer] !== null ||
    s[hooks.kBufferGen] !== null ||
    s[hooks.kBufferCb] !== null
  ) {
    return false;
  }
  const buf = readBuffer();
  (handle.useUserBuffer as (b: Buffer) => void).call(handle, buf);
  s[hooks.kBuffer] = buf;
  s[hooks.kBufferGen] = readBuffer;
  s[hooks.kBufferCb] = onRead;
  readBufferCounts.acceptedShared++;
  return true;
}
