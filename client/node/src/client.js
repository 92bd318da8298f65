// AttentionClient: calls attention.v1.AttentionService with Float32Array tensors in and out.
'use strict';
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const {protos} = require('./proto');
const {floatTensor, boolTensor, fromTensor} = require('./tensors');
const {fromServiceError} = require('./errors');
const {CAUSAL, MAPS, KV_DTYPES, pick} = require('./enums');
const {Session, stepRequest, stepResult} = require('./session');

function buildMask({causal = 'none', keyLengths, allowed, bias}) {
  const mask = {
    causal: pick(CAUSAL, 'causal', causal), key_lengths: keyLengths ? [...keyLengths] : [],
  };
  if (allowed) mask.allowed = boolTensor('allowed', allowed);
  if (bias) mask.bias = floatTensor('bias', bias);
  return mask;
}

class AttentionClient {
  /**
   * address: 'host:port'. options: rootCerts, privateKey, certChain (PEM Buffers; any of them,
   * or tls: true, selects TLS), token (sent as `authorization: Bearer <token>`), timeoutMs
   * (each call's deadline, default 60000), channelOptions (grpc-js channel options).
   */
  constructor(address, options = {}) {
    const {rootCerts, privateKey, certChain, tls, token, timeoutMs = 60000} = options;
    const credentials = tls || rootCerts || privateKey || certChain
      ? grpc.credentials.createSsl(rootCerts || null, privateKey || null, certChain || null)
      : grpc.credentials.createInsecure();
    const channelOptions = {
      'grpc.max_send_message_length': 64 << 20, 'grpc.max_receive_message_length': 64 << 20,
      ...options.channelOptions,
    };
    const {attention, health} = protos();
    this.service = new attention.AttentionService(address, credentials, channelOptions);
    this.healthService = new health.Health(address, credentials, channelOptions);
    this.token = token;
    this.timeoutMs = timeoutMs;
  }

  /** One unary call; `sessionId` also goes in the attn-session-id metadata (docs/sessions.md). */
  call(stub, method, request, timeoutMs, sessionId) {
    const metadata = new grpc.Metadata();
    if (this.token) metadata.set('authorization', `Bearer ${this.token}`);
    if (sessionId) metadata.set('attn-session-id', sessionId);
    const deadline = new Date(Date.now() + (timeoutMs ?? this.timeoutMs));
    return new Promise((resolve, reject) => {
      stub[method](request, metadata, {deadline}, (error, response) => {
        if (error) reject(fromServiceError(error));
        else resolve(response);
      });
    });
  }

  /**
   * softmax(Q K^T * scale + mask) V. query {data: Float32Array, shape: [B,H,Sq,D]}, key
   * [B,Hkv,Sk,D], value [B,Hkv,Sk,Dv]; causal 'none' | 'upper_left' | 'lower_right';
   * keyLengths (one per batch item); allowed {data, shape} (truthy = may attend) and bias
   * {data, shape}, broadcastable to [B,H,Sq,Sk]; scale; maps 'probabilities' (default) |
   * 'scores' | 'both' | 'none'. Resolves to {output, attention, scores, timing: {queueUs,
   * computeUs}}, maps null when not asked for; rejects with an AttnServeError.
   */
  async attend({query, key, value, causal, keyLengths, allowed, bias, scale, maps = 'probabilities',
    timeoutMs}) {
    const request = {
      query: floatTensor('query', query), key: floatTensor('key', key),
      value: floatTensor('value', value), mask: buildMask({causal, keyLengths, allowed, bias}),
      attention_maps: pick(MAPS, 'maps', maps),
    };
    if (scale !== undefined) request.scale = scale;
    const response = await this.call(this.service, 'Attend', request, timeoutMs);
    return {
      output: fromTensor(response.output),
      attention: response.attention ? fromTensor(response.attention) : null,
      scores: response.scores ? fromTensor(response.scores) : null,
      timing: {
        queueUs: response.timing?.queue_us ?? 0, computeUs: response.timing?.compute_us ?? 0,
      },
    };
  }

  /**
   * Opens a KV-cache session (docs/sessions.md): numLayers, numHeads, headDim, numKvHeads (0 =
   * numHeads), valueDim (0 = headDim), kvDtype 'float32' | 'bfloat16', maxTokens, idleTimeoutS
   * (0 = the server's defaults). Resolves to a Session. Its id (128 random bits) is drawn here,
   * so that a load balancer hashing it creates the session where its later calls will go.
   * routeWith (a Session): the new one goes where that one is (its id starts with the other's
   * route), so that behind a load balancer both can be stepped in one batch.
   */
  async session({numLayers, numHeads, headDim, numKvHeads = 0, valueDim = 0, kvDtype = 'float32',
    maxTokens = 0, idleTimeoutS = 0, routeWith}) {
    const drawn = crypto.randomBytes(16).toString('hex');
    const sessionId = routeWith ? `${routeWith.id.slice(0, 32)}-${drawn}` : drawn;
    const request = {
      session_id: sessionId, num_layers: numLayers, num_heads: numHeads,
      num_kv_heads: numKvHeads, head_dim: headDim, value_dim: valueDim,
      kv_dtype: pick(KV_DTYPES, 'kvDtype', kvDtype), max_tokens: maxTokens,
      idle_timeout_s: idleTimeoutS,
    };
    return new Session(this, await this.call(this.service, 'CreateSession', request, undefined,
        sessionId));
  }

  /**
   * One step of each of several sessions in one call, all or nothing: steps [{session, layer,
   * query, key, value, maps, ...}], at most one per session. When the sessions share a route
   * (forks, routeWith), the call carries it for a load balancer; otherwise it carries none (one
   * server, or the caller routes). Resolves to their results in order.
   */
  async stepBatch(steps, {timeoutMs} = {}) {
    const request = {steps: steps.map(({session, layer, ...options}) =>
      stepRequest(session.id, layer, options))};
    const routes = new Set(steps.map(({session}) => session.id.slice(0, 32)));
    const response = await this.call(this.service, 'SessionAttendBatch', request, timeoutMs,
        routes.size === 1 ? steps[0].session.id : undefined);
    return response.results.map(stepResult);
  }

  /** The Session messages of the sessions this caller owns. */
  async sessions({timeoutMs} = {}) {
    return (await this.call(this.service, 'ListSessions', {}, timeoutMs)).sessions;
  }

  /** The server's ServerInfo (version, onednn_version, onednn_isa, workers, limits, dtypes). */
  getServerInfo({timeoutMs} = {}) {
    return this.call(this.service, 'GetServerInfo', {}, timeoutMs);
  }

  /** The grpc.health.v1 status name ('SERVING', 'NOT_SERVING', ...) of `service` ('' = server). */
  async health({service = 'attention.v1.AttentionService', timeoutMs} = {}) {
    const reply = await this.call(this.healthService, 'Check', {service}, timeoutMs);
    return reply.status;
  }

  close() {
    this.service.close();
    this.healthService.close();
  }
}

module.exports = {AttentionClient};
