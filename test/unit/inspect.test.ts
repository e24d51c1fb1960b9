// portpub inspect's document (Docker's ContainerJSON fields a service has) and its Go-template
// subset: fields, json, index, parentheses, Go's printing of maps, structs and lists, and the
// refusal of what it does not read.
import { describe, expect, it } from 'vitest';
import { inspectDoc, parseTemplate, render } from '../../src/cli/inspect.js';
import type { ContainerRecord } from '../../src/registry/containers.js';

const ID = 'ab'.repeat(32);

/** stopped is a run record that ran and exited 0; running() says it serves (its pid is ours). */
function record(over: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    kind: 'run',
    id: ID,
    name: 'web',
    command: 'python3',
    args: ['-m', 'http.server', '80'],
    created: '2026-12-02T01:00:00.000Z',
    network: 'private',
    env: [['A', '1']],
    userEnv: ['A=1'],
    publish: [{ hostIp: '127.0.0.1', hostPort: '8080', targetPort: 80, protocol: 'tcp' }],
    exposed: [
      { port: 80, protocol: 'tcp' },
      { port: 5432, protocol: 'tcp' },
    ],
    links: ['db', 'cache:kv'],
    ip: '127.9.8.7',
    detach: true,
    autoRemove: false,
    interactive: false,
    serve: {},
    state: {
      status: 'exited',
      exitCode: 0,
      startedAt: '2026-12-02T01:00:01.000Z',
      finishedAt: '2026-12-02T01:05:00.000Z',
    },
    ...over,
  };
}

function running(): ContainerRecord {
  const binding = {
    hostIp: '127.0.0.1',
    hostPort: 8080,
    targetHost: '127.9.8.7',
    targetPort: 80,
    protocol: 'tcp' as const,
  };
  return record({
    state: {
      status: 'running',
      pid: process.pid,
      startedAt: '2026-12-02T01:00:01.000Z',
      bindings: [binding],
      env: [
        ['PATH', '/usr/bin'],
        ['A', '1'],
      ],
    },
  });
}

describe('portpub inspect', () => {
  it("gives a running service's address, ports, links and state in Docker's fields", () => {
    const doc = inspectDoc(running());
    expect(doc).toMatchObject({
      Id: ID,
      Name: '/web',
      Path: 'python3',
      Args: ['-m', 'http.server', '80'],
      State: { Status: 'running', Running: true, Pid: process.pid, ExitCode: 0 },
      HostConfig: {
        NetworkMode: 'bridge',
        PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }] },
        Links: ['/db:/web/db', '/cache:/web/kv'],
      },
      Config: {
        Hostname: ID.slice(0, 12),
        Env: ['PATH=/usr/bin', 'A=1'],
        Cmd: ['python3', '-m', 'http.server', '80'],
        ExposedPorts: { '80/tcp': {}, '5432/tcp': {} },
      },
      NetworkSettings: {
        IPAddress: '127.9.8.7',
        Ports: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }], '5432/tcp': null },
      },
    });
  });

  it('gives a stopped one its exit code and end, and no address or ports', () => {
    const doc = inspectDoc(record({ state: { status: 'exited', exitCode: 3 } }));
    expect(doc).toMatchObject({
      State: { Status: 'exited', Running: false, Pid: 0, ExitCode: 3 },
      NetworkSettings: { IPAddress: '', Ports: {} },
    });
    expect((doc.State as Record<string, unknown>).StartedAt).toBe('0001-01-01T00:00:00Z');
  });

  it('reads the templates tutorials use, printing as Go does', () => {
    const doc = inspectDoc(running());
    const r = (f: string) => render(parseTemplate(f), doc);
    expect(r('{{.NetworkSettings.IPAddress}}')).toBe('127.9.8.7');
    expect(r('ip={{ .NetworkSettings.IPAddress }} name={{.Name}}')).toBe('ip=127.9.8.7 name=/web');
    expect(r('{{json .NetworkSettings.Ports}}')).toBe(
      '{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"5432/tcp":null}',
    );
    expect(r('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}')).toBe('8080');
    expect(r('{{index .Config.Cmd 1}}')).toBe('-m');
    // Maps sorted as map[k:v], a PortBinding struct as {ip port}, lists as [a b], nil as <nil>.
    expect(r('{{.NetworkSettings.Ports}}')).toBe('map[5432/tcp:<nil> 80/tcp:[{127.0.0.1 8080}]]');
    expect(r('{{.Args}} {{.State.Running}} {{.State.Pid}}')).toBe(
      `[-m http.server 80] true ${process.pid}`,
    );
    expect(r('{{.NoSuchField}}')).toBe('<no value>');
  });

  it.for([
    ['{{range .Config.Env}}{{.}}{{end}}', '"range" is not understood'],
    ['{{.Name | printf "%s"}}', 'pipes (|) are not understood'],
    ['{{.Name', 'unclosed action'],
    ['{{json}}', 'json takes one value'],
    ['{{index .Config.Cmd}}', 'index takes a value and keys'],
    ['{{(index .Config.Cmd 0}}', 'unbalanced parentheses'],
    ['{{.Name .Id}}', '".Id" after the value'],
  ] as [string, string][])('refuses %s, naming the format', ([format, why]) => {
    expect(() => parseTemplate(format)).toThrow(why);
    expect(() => parseTemplate(format)).toThrow(`--format ${JSON.stringify(format)}`);
  });
});
