// portpub's public API: the -p parser and the forwarding the CLI runs, for use as a library.
export {
  parsePublish,
  parsePortSpec,
  convertToStandardNotation,
  formatSpec,
  type PortMapping,
  type Protocol,
} from './docker/spec.js';
export {
  startPublisher,
  Publisher,
  startForwarding,
  Forwarding,
  type Binding,
  type BindingStats,
  type PublisherOptions,
  type ForwardingOptions,
  type PublishRequest,
  type TcpOptions,
  type UdpOptions,
} from './publish/publisher.js';
export { PortAllocator, type PortRange } from './publish/allocate.js';
export {
  TcpForwarder,
  listenTcp,
  type TcpForwarderOptions,
  type TcpStats,
} from './tcp/forwarder.js';
export { UdpForwarder, type UdpForwarderOptions, type UdpStats } from './udp/forwarder.js';
export { bindUdp } from './udp/bind.js';
export { formatPortLines } from './docker/report.js';
export { createLogger, type Logger } from './logger.js';
// Every error portpub raises on purpose is a PortpubError with a stable `code` from ERRORS.
export * from './errors.js';
