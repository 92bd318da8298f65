// Session: a KV-cache session held by attnserve (docs/sessions.md). The server keeps each layer's
// keys and values; a step sends only its new tokens' query [H,n,D], key [Hkv,n,D] and value
// [Hkv,n,Dv] and resolves to their output [H,n,Dv] over every cached position up to their own.
// Every call sends the session id in the attn-session-id metadata too, which a load balancer in
// front of several replicas hashes (its first 32 hex digits: a fork shares them).
'use strict';
const {MAPS, pick} = require('./enums');
const {floatTensor, fromTensor} = require('./tensors');

/** The SessionAttendRequest of a step. */
function stepRequest(sessionId, layer, {query, key, value, maps = 'none', windowTokens = 0,
  scale}) {
  const request = {
    session_id: sessionId, layer, query: floatTensor('query', query),
    key: floatTensor('key', key), value: floatTensor('value', value),
    attention_maps: pick(MAPS, 'maps', maps), window_tokens: windowTokens,
  };
  if (scale !== undefined) request.scale = scale;
  return request;
}

/** A SessionAttendResponse as {output, attention, scores, position, firstPosition}. */
function stepResult(response) {
  return {
    output: fromTensor(response.output),
    attention: response.attention ? fromTensor(response.attention) : null,
    scores: response.scores ? fromTensor(response.scores) : null,
    position: response.position, firstPosition: response.first_position,
  };
}

class Session {
  /** Made by AttentionClient.session() and fork(); `info` is the server's Session message. */
  constructor(client, info) {
    this.client = client;
    this.info = info;
    this.id = info.session_id;
  }

  call(method, request) {
    return this.client.call(this.client.service, method, request, undefined, this.id);
  }

  /**
   * Appends the n new tokens' key and value to `layer`'s cache and attends their query rows to
   * every cached position up to their own. options: maps 'none' (default) | 'probabilities' |
   * 'scores' | 'both', windowTokens (> 0: sliding window), scale.
   */
  async step(layer, options) {
    return stepResult(await this.call('SessionAttend', stepRequest(this.id, layer, options)));
  }

  /** A new Session sharing this one's first `tokens` positions (all when undefined). */
  async fork(tokens) {
    const request = {session_id: this.id};
    if (tokens !== undefined) request.tokens = tokens;
    return new Session(this.client, await this.call('ForkSession', request));
  }

  /** Drops positions >= tokens of every layer; resolves to the updated Session message. */
  async truncate(tokens) {
    this.info = await this.call('TruncateSession', {session_id: this.id, tokens});
    return this.info;
  }

  /** The server's Session message now (layer_tokens, bytes, ...). */
  async refresh() {
    this.info = await this.call('GetSession', {session_id: this.id});
    return this.info;
  }

  async close() {
    await this.call('CloseSession', {session_id: this.id});
  }
}

module.exports = {Session, stepRequest, stepResult};
