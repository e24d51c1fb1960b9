// The one module under src/ that reaches into Node's private socket state (`_handle`, the
// `onread` symbols, the writable state): everything else asks here, so a Node upgrade that moves
// these has one file to check. Each function says what it relies on and what it does when the
// internals are not as expected.
import type { Socket as DgramSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';

/** HandleLike is the part of a libuv stream or TCP handle wrap these functions use. */
interface HandleLike {
  fd?: number;
  close?: (cb: () => void) => void;
  useUserBuffer?: (buf: Uint8Array) => void;
  getsockname?: (out: Record<string, unknown>) => number;
}

type Internal = { _handle?: HandleLike | null; _writableState?: { finalCalled?: boolean } };

function internal(x: Socket | Server): Internal {
  return x as unknown as Internal;
}

/**
 * handleFd is the OS descriptor of a socket's or server's libuv handle, or undefined when it has
 * none (closed, not yet bound, or not a descriptor-backed handle). The native engine serves a
 * listening net.Server through it.
 */
export function handleFd(x: Socket | Server): number | undefined {
  const fd = internal(x)._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * shutdownPending says whether the socket's end() has reached libuv (Writable called _final,
 * which asked for a shutdown) and the shutdown has not completed: it stays pending while the
 * peer reads nothing and the send buffer is full. libuv refuses a reset then (EINVAL).
 */
export function shutdownPending(socket: Socket): boolean {
  return internal(socket)._writableState?.finalCalled === true && !socket.writableFinished;
}

/**
 * resetSocket closes a socket with a reset (RST) where the kernel allows it, and in every case
 * closes its descriptor and ends with 'close'.
 *
 * Node's resetAndDestroy() asks libuv for uv_tcp_close_reset, which fails with EINVAL while a
 * shutdown is pending; Node then emits an 'error' but has already dropped the handle, so the
 * descriptor stays open and 'close' never comes (issue 11: a leak any client could drive). Where
 * a shutdown is pending the FIN is already committed behind every byte written, so a plain close
 * is what the peer sees either way. A connecting socket is closed plainly too (there is no
 * connection to reset; resetAndDestroy would wait for the connect, then reset it). Should libuv
 * refuse the reset for any other reason, the handle is closed here and 'close' emitted.
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || shutdownPending(socket)) {
    socket.destroy();
    return;
  }
  const handle = internal(socket)._handle;
  let refused = false;
  const onError = (err: NodeJS.ErrnoException): void => {
    if (err.syscall === 'reset') refused = true;
  };
  socket.prependListener('error', onError);
  socket.resetAndDestroy(); // emits a refusal synchronously, from _destroy
  socket.off('error', onError);
  if (refused && typeof handle?.close === 'function') {
    handle.close(() => socket.emit('close', false));
  }
}

/** OnRead is a read callback: `this` is the socket that read nread bytes into buf. */
export type OnRead = (this: Socket, nread: number, buf: Uint8Array) => boolean;

/**
 * Node offers `onread` only to sockets it connects (net.connect); accepted sockets get the same
 * machinery through the private fields that option sets. ReadHooks are those fields, found on
 * the first socket asked about and checked to look as expected.
 */
interface ReadHooks {
  readonly kBuffer: symbol;
  readonly kBufferGen: symbol;
  readonly kBufferCb: symbol;
}

let hooks: ReadHooks | null | undefined;

function findHooks(socket: Socket): ReadHooks | null {
  const bySymbol = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const kBuffer = bySymbol.get('kBuffer');
  const kBufferGen = bySymbol.get('kBufferGen');
  const kBufferCb = bySymbol.get('kBufferCb');
  if (kBuffer === undefined || kBufferGen === undefined || kBufferCb === undefined) return null;
  return { kBuffer, kBufferGen, kBufferCb };
}

/**
 * userBufferReads makes a socket that has not started reading (accepted with pauseOnConnect) read
 * into buf, then into what next() returns, and call onRead, as `net.connect({ onread })` does.
 * Returns false, changing nothing, where the internals are not as expected (another Node
 * version): the caller then listens for 'data'.
 */
export function userBufferReads(
  socket: Socket,
  buf: Buffer,
  next: () => Buffer,
  onRead: OnRead,
): boolean {
  hooks ??= findHooks(socket);
  const handle = internal(socket)._handle;
  const s = socket as unknown as Record<symbol, unknown>;
  if (
    hooks === null ||
    handle === undefined ||
    handle === null ||
    typeof handle.useUserBuffer !== 'function' ||
    s[hooks.kBuffer] !== null ||
    s[hooks.kBufferGen] !== null ||
    s[hooks.kBufferCb] !== null
  ) {
    return false;
  }
  handle.useUserBuffer.call(handle, buf);
  s[hooks.kBuffer] = buf;
  s[hooks.kBufferGen] = next;
  s[hooks.kBufferCb] = onRead;
  return true;
}

/**
 * dgramFd is the OS descriptor of a bound dgram socket, or undefined when it has none. Node keeps
 * a dgram socket's handle under the private `Symbol('state symbol')` (lib/dgram.js kStateSymbol),
 * not `_handle`; the native UDP engine serves the socket through it.
 */
export function dgramFd(socket: DgramSocket): number | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  if (state === undefined) return undefined;
  const handle = (socket as unknown as Record<symbol, { handle?: HandleLike | null } | undefined>)[
    state
  ]?.handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * dgramStopReading stops libuv reading a bound dgram socket, so its datagrams wait in the kernel
 * buffer instead of being read and discarded (a socket with no 'message' listener drops what it
 * reads). The native UDP engine uses it while a hostname target resolves. It relies on the same
 * state symbol as dgramFd and the handle's recvStop(); false when they are not there.
 */
export function dgramStopReading(socket: DgramSocket): boolean {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  if (state === undefined) return false;
  const handle = (
    socket as unknown as Record<symbol, { handle?: { recvStop?: () => number } | null } | undefined>
  )[state]?.handle;
  if (typeof handle?.recvStop !== 'function') return false;
  return handle.recvStop() === 0;
}

/**
 * localAddressNow reads a socket's local address from its handle even while it is connecting:
 * the kernel picks the local port at connect(), which Node issues on the tick after net.connect()
 * for an IP literal, but socket.address() answers nothing until the connect completes. Undefined
 * when the handle has no address yet (a hostname still being looked up).
 */
export function localAddressNow(socket: Socket): { address: string; port: number } | undefined {
  const handle = internal(socket)._handle;
  if (typeof handle?.getsockname !== 'function') return undefined;
  const out: Record<string, unknown> = {};
  if (handle.getsockname(out) !== 0) return undefined;
  const { address, port } = out;
  return typeof address === 'string' && typeof port === 'number' && port > 0
    ? { address, port }
    : undefined;
}
