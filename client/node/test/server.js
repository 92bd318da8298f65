// Starts build/attnserve on a free loopback port for the tests and stops it (bounded waits).
'use strict';
const {spawn} = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {before, after} = require('node:test');

const BUILD_DIR = process.env.ATTN_BUILD_DIR || path.join(__dirname, '..', '..', '..', 'build');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves to {address, stop()} once the server has written its port; rejects after timeoutMs. */
async function startServer(flags = [], timeoutMs = 30000) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnserve-node-'));
  const portFile = path.join(dir, 'port');
  const log = fs.openSync(path.join(dir, 'server.log'), 'w');
  const child = spawn(path.join(BUILD_DIR, 'attnserve'),
      ['--address=127.0.0.1:0', `--port_file=${portFile}`, '--metrics_address=', ...flags],
      {stdio: ['ignore', log, log]});
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);  // SIGTERM drains; bounded
      await exited;
      clearTimeout(timer);
    }
    process.removeListener('exit', killOnExit);
    fs.closeSync(log);
    fs.rmSync(dir, {recursive: true, force: true});
  };
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(portFile) || fs.readFileSync(portFile, 'utf8').trim() === '') {
    if (child.exitCode !== null || Date.now() > deadline) {
      const output = fs.readFileSync(path.join(dir, 'server.log'), 'utf8');
      await stop();
      throw new Error(`attnserve did not start (exit ${child.exitCode}): ${output}`);
    }
    await sleep(20);
  }
  return {address: `127.0.0.1:${fs.readFileSync(portFile, 'utf8').trim()}`, stop};
}

/**
 * For a describe block: starts a server before its tests and stops it after them. Returns an
 * object whose `client` (an AttentionClient of `makeClient`) is set once the server is up.
 */
function useServer(makeClient, flags = []) {
  const fixture = {server: null, client: null};
  before(async () => {
    fixture.server = await startServer(flags);
    fixture.client = makeClient(fixture.server.address);
  });
  after(async () => {
    fixture.client?.close();
    await fixture.server?.stop();
  });
  return fixture;
}

module.exports = {startServer, useServer};
