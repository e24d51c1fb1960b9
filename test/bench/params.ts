// The benchmark's sizes per mode. Every loop is bounded in count and in time: a row ends at
// whichever of its two limits comes first.

/** Params are the sizes of one run. */
export interface Params {
  bulkSecs: number;
  rrSecs: number;
  rrCount: number;
  connSecs: number;
  connCount: number;
  connClients: number;
  idleConns: number;
  idleBatch: number;
  udpClients: number;
  udpCount: number;
  udpSecs: number;
}

export type Mode = 'default' | 'quick' | 'smoke';

export const PARAMS: Record<Mode, Params> = {
  default: {
    bulkSecs: 5,
    rrSecs: 3,
    rrCount: 200_000,
    connSecs: 3,
    connCount: 30_000,
    connClients: 20,
    idleConns: 2000,
    idleBatch: 200,
    udpClients: 500,
    udpCount: 20,
    udpSecs: 30,
  },
  quick: {
    bulkSecs: 1,
    rrSecs: 2,
    rrCount: 100_000,
    connSecs: 1,
    connCount: 10_000,
    connClients: 20,
    idleConns: 1000,
    idleBatch: 200,
    udpClients: 500,
    udpCount: 20,
    udpSecs: 20,
  },
  smoke: {
    bulkSecs: 0.2,
    rrSecs: 0.2,
    rrCount: 300,
    connSecs: 0.2,
    connCount: 300,
    connClients: 20,
    idleConns: 100,
    idleBatch: 50,
    udpClients: 50,
    udpCount: 4,
    udpSecs: 5,
  },
};
