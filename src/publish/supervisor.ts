// Former name of publisher.ts, kept while work in flight still imports it: import
// './publisher.js' instead; this file goes once nothing does.
export * from './publisher.js';
