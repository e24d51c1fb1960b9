// The subjects measured: direct loopback (no forwarder), portpub with each engine, and the
// peers found on this machine (socat, haproxy, nginx, rinetd, docker-proxy). Each builds its own
// command line, writing any config file into the run's temp dir; a missing one is skipped with
// the reason, which the report prints.
import { accessSync, constants, existsSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Proto } from './ports.js';

/** LaunchOptions: where a subject listens and what it forwards to. */
export interface LaunchOptions {
  proto: Proto;
  lhost: string;
  lport: number;
  thost: string;
  tport: number;
  /** dir is a private temp dir for config, pid and log files; tag makes names unique in it. */
  dir: string;
  tag: string;
}

/** Launch is the command a subject runs; fd3: docker-proxy writes its start status there. */
export interface Launch {
  cmd: string;
  args: string[];
  fd3?: boolean;
}

/** Subject is one thing measured. `peer` ones are the anchors portpub's ratios are taken to. */
export interface Subject {
  name: string;
  kind: 'direct' | 'portpub' | 'peer';
  protos: Proto[];
  launch?: (o: LaunchOptions) => Launch;
}

/** Skipped is a subject not measured, and why. */
export interface Skipped {
  name: string;
  why: string;
}

const NGINX_STREAM = '/usr/lib/nginx/modules/ngx_stream_module.so';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** which finds name on PATH (then in the extra dirs), or undefined. */
export function which(name: string, extra: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...extra];
  return dirs.map((d) => join(d, name)).find(executable);
}

function portpub(bin: string, engine: 'native' | 'js'): Subject {
  return {
    name: `portpub-${engine}`,
    kind: 'portpub',
    protos: ['tcp', 'udp'],
    launch: (o) => ({
      cmd: process.execPath,
      args: [
        bin,
        '-p',
        `${o.lhost}:${o.lport}:${o.tport}/${o.proto}`,
        '--target',
        o.thost,
        '--log-level',
        'warn',
        '--engine',
        engine,
      ],
    }),
  };
}

function socat(path: string): Subject {
  return {
    name: 'socat',
    kind: 'peer',
    protos: ['tcp', 'udp'],
    // backlog=4096: socat's default backlog of 5 drops SYNs under the connection-rate burst.
    launch: (o) => ({
      cmd: path,
      args:
        o.proto === 'tcp'
          ? [
              `TCP-LISTEN:${o.lport},bind=${o.lhost},fork,reuseaddr,backlog=4096`,
              `TCP:${o.thost}:${o.tport}`,
            ]
          : [`UDP-LISTEN:${o.lport},bind=${o.lhost},fork,reuseaddr`, `UDP:${o.thost}:${o.tport}`],
    }),
  };
}

function haproxy(path: string): Subject {
  return {
    name: 'haproxy',
    kind: 'peer',
    protos: ['tcp'],
    launch: (o) => {
      const cfg = join(o.dir, `haproxy-${o.tag}.cfg`);
      const lines = [
        'global',
        '  maxconn 9000',
        'defaults',
        '  mode tcp',
        '  maxconn 9000',
        '  timeout connect 5s',
        '  timeout client 300s',
        '  timeout server 300s',
        'frontend fe',
        `  bind ${o.lhost}:${o.lport}`,
        '  default_backend be',
        'backend be',
        `  server s1 ${o.thost}:${o.tport}`,
      ];
      writeFileSync(cfg, lines.join('\n') + '\n');
      return { cmd: path, args: ['-f', cfg, '-db'] };
    },
  };
}

function nginx(path: string): Subject {
  return {
    name: 'nginx',
    kind: 'peer',
    protos: ['tcp', 'udp'],
    launch: (o) => {
      const cfg = join(o.dir, `nginx-${o.tag}.conf`);
      const err = join(o.dir, `nginx-${o.tag}.err`);
      // UDP listens with reuseport so each client stays on one worker.
      const listen =
        o.proto === 'udp' ? `${o.lhost}:${o.lport} udp reuseport` : `${o.lhost}:${o.lport}`;
      const lines = [
        ...(existsSync(NGINX_STREAM) ? [`load_module ${NGINX_STREAM};`] : []),
        'daemon off;',
        'worker_processes auto;',
        'worker_rlimit_nofile 20000;',
        `pid ${join(o.dir, `nginx-${o.tag}.pid`)};`,
        `error_log ${err} warn;`,
        'events { worker_connections 12000; }',
        `stream { server { listen ${listen}; proxy_pass ${o.thost}:${o.tport}; } }`,
      ];
      writeFileSync(cfg, lines.join('\n') + '\n');
      return { cmd: path, args: ['-c', cfg, '-p', o.dir + '/', '-e', err] };
    },
  };
}

function rinetd(path: string): Subject {
  return {
    name: 'rinetd',
    kind: 'peer',
    protos: ['tcp'],
    launch: (o) => {
      const cfg = join(o.dir, `rinetd-${o.tag}.conf`);
      writeFileSync(cfg, `${o.lhost} ${o.lport} ${o.thost} ${o.tport}\n`);
      return { cmd: path, args: ['-f', '-c', cfg] };
    },
  };
}

function dockerProxy(path: string): Subject {
  return {
    name: 'docker-proxy',
    kind: 'peer',
    protos: ['tcp', 'udp'],
    launch: (o) => ({
      cmd: path,
      args: [
        '-proto',
        o.proto,
        '-host-ip',
        o.lhost,
        '-host-port',
        `${o.lport}`,
        '-container-ip',
        o.thost,
        '-container-port',
        `${o.tport}`,
      ],
      fd3: true,
    }),
  };
}

/** ALL_SUBJECTS is every subject name, in the order of the table's columns. */
export const ALL_SUBJECTS = [
  'direct',
  'portpub-native',
  'portpub-js',
  'socat',
  'haproxy',
  'nginx',
  'rinetd',
  'docker-proxy',
];

/** findSubjects builds the wanted subjects that can run here, and says why the others cannot. */
export function findSubjects(
  root: string,
  bin: string,
  wanted: string[],
): { subjects: Subject[]; skipped: Skipped[] } {
  const subjects: Subject[] = [];
  const skipped: Skipped[] = [];
  const nativeDir = process.env.PORTPUB_NATIVE_DIR ?? join(root, 'native', 'build', 'Release');
  // /usr/sbin too: haproxy, nginx and rinetd live there, and a user's PATH may not have it.
  const sbin = ['/usr/sbin', '/sbin'];
  const dockerDirs = [...sbin, '/usr/bin', '/usr/libexec/docker', '/usr/lib/docker'];
  const peers: Record<string, { dirs: string[]; make: (p: string) => Subject }> = {
    socat: { dirs: sbin, make: socat },
    haproxy: { dirs: sbin, make: haproxy },
    nginx: { dirs: sbin, make: nginx },
    rinetd: { dirs: sbin, make: rinetd },
    'docker-proxy': { dirs: dockerDirs, make: dockerProxy },
  };
  for (const name of ALL_SUBJECTS.filter((n) => wanted.includes(n))) {
    if (name === 'direct') subjects.push({ name, kind: 'direct', protos: ['tcp', 'udp'] });
    else if (name === 'portpub-js') subjects.push(portpub(bin, 'js'));
    else if (name === 'portpub-native') {
      if (existsSync(join(nativeDir, 'portpub_engine.node'))) subjects.push(portpub(bin, 'native'));
      else
        skipped.push({
          name,
          why: `the addon did not build (no ${nativeDir}/portpub_engine.node)`,
        });
    } else {
      const peer = peers[name]!;
      const path = which(name, peer.dirs);
      if (path) subjects.push(peer.make(path));
      else skipped.push({ name, why: `not found on PATH, nor in ${peer.dirs.join(', ')}` });
    }
  }
  return { subjects, skipped };
}
