// The process's one native engine (one engine thread): started on first use, it hands each
// batch of events to the forwarder that owns the listener, and keeps the process alive while
// any native listener or connection is served (Node's own servers are closed once the engine
// holds their sockets, so nothing else would).
import { parseGoDurationMs } from '../duration.js';
import { UsageError } from '../errors.js';
import type { NativeBinding } from './load.js';

/**
 * BUSY_POLL_US is how long the engine polls before sleeping by default (native/engine.c): 1 ms,
 * since on a virtual machine whose idle CPU wakes slowly a reply or the next request often comes
 * later than 200 µs, and each such miss counts against the 8 a second after which polling stops.
 */
export const BUSY_POLL_US = 1000;
const BUSY_POLL_MAX_US = 10_000;

/**
 * busyPollUs reads PORTPUB_BUSY_POLL: how long the engine thread polls for the next event after
 * request/response traffic before it sleeps, as a Go duration (`200us`, `1ms`), `0` for never.
 * Unset or empty: BUSY_POLL_US. Anything else is a UsageError naming the variable.
 */
export function busyPollUs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.PORTPUB_BUSY_POLL;
  if (text === undefined || text.trim() === '') return BUSY_POLL_US;
  const ms = text.trim() === '0' ? 0 : parseGoDurationMs(text);
  if (ms === undefined || ms * 1000 > BUSY_POLL_MAX_US) {
    throw new UsageError(
      `PORTPUB_BUSY_POLL must be a duration from 0 to 10ms with its unit (200us, 1ms; 0 turns ` +
        `busy polling off); got ${JSON.stringify(text)}`,
    );
  }
  return Math.round(ms * 1000);
}

/** busyPollText is a window as a Go duration: `1ms`, `200us`, `0` for off. */
export function busyPollText(us: number): string {
  if (us === 0) return '0';
  return us % 1000 === 0 ? `${us / 1000}ms` : `${us}us`;
}

/** Event types and the record layout, as native/engine.h writes them. */
export const EV_OPENED = 1;
export const EV_CLOSED = 2;
export const EV_REJECTED = 3;
export const EV_ACCEPT_ERROR = 4;
export const EV_DRAINED = 5;
export const EV_FLOW_OPENED = 6;
export const EV_FLOW_ENDED = 7;
export const EV_DROP = 8;
export const EV_UDP_ERROR = 9;
export const EV_LOOPED = 10;
export const FIELDS = 9;

/** EngineEvent is one record of a batch: the numbers as native/engine.h's struct event. */
export interface EngineEvent {
  type: number;
  conn: number;
  how: number;
  err: number;
  up: number;
  down: number;
  durationMs: number;
  /** UDP: the flow socket's source port. */
  extra: number;
  client: string;
}

/** EngineClient is what a native forwarder gives the engine to receive its events. */
export interface EngineClient {
  onEvent(ev: EngineEvent): void;
  /** onLost is called when the engine dropped events for want of memory. */
  onLost(): void;
}

/**
 * BusyPollStats: the native engine thread's busy polling (native/engine.c busy_poll) since it
 * started: the polls it began, and those that found an event before the window ended (the rest
 * slept after it, as without polling).
 */
export interface BusyPollStats {
  polls: number;
  hits: number;
}

/** NativeEngine owns the binding's start(), the listener ids, and the dispatch of events. */
export class NativeEngine {
  private readonly clients = new Map<number, EngineClient>();
  private nextId = 1;
  private started = false;

  constructor(readonly binding: NativeBinding) {}

  /** add registers a client, starting the engine and keeping the process alive, and returns its id. */
  add(client: EngineClient): number {
    if (!this.started) {
      this.binding.start((nums, clients, lost) => this.dispatch(nums, clients, lost), busyPollUs());
      this.started = true;
    }
    const id = this.nextId++;
    if (this.clients.size === 0) this.binding.ref();
    this.clients.set(id, client);
    return id;
  }

  /** remove forgets a client (after its listener drained); the last one lets the process exit. */
  remove(id: number): void {
    if (!this.clients.delete(id)) return;
    if (this.clients.size === 0) this.binding.unref();
  }

  /** busyPoll reads the engine thread's busy-polling counters; undefined before it started. */
  busyPoll(): BusyPollStats | undefined {
    if (!this.started) return undefined;
    const [polls, hits] = this.binding.pollStats();
    return { polls, hits };
  }

  private dispatch(nums: Float64Array, clients: string[], lost: boolean): void {
    const ev: EngineEvent = {
      type: 0,
      conn: 0,
      how: 0,
      err: 0,
      up: 0,
      down: 0,
      durationMs: 0,
      extra: 0,
      client: '',
    };
    for (let i = 0; i < clients.length; i++) {
      const o = i * FIELDS;
      const client = this.clients.get(nums[o + 1]!);
      if (!client) continue;
      ev.type = nums[o]!;
      ev.conn = nums[o + 2]!;
      ev.how = nums[o + 3]!;
      ev.err = nums[o + 4]!;
      ev.up = nums[o + 5]!;
      ev.down = nums[o + 6]!;
      ev.durationMs = nums[o + 7]!;
      ev.extra = nums[o + 8]!;
      ev.client = clients[i]!;
      client.onEvent(ev);
    }
    if (lost) for (const client of this.clients.values()) client.onLost();
  }
}

let engine: NativeEngine | undefined;

/** nativeEngine is the process's engine over binding (one per process). */
export function nativeEngine(binding: NativeBinding): NativeEngine {
  engine ??= new NativeEngine(binding);
  return engine;
}

/** busyPollStats: this process's engine's busy polling, or undefined while none serves here. */
export function busyPollStats(): BusyPollStats | undefined {
  return engine?.busyPoll();
}
