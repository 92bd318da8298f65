// AttentionClient: calls attention.v1.AttentionService with Float32Array tensors in and out.
'use strict';
const grpc = require('@grpc/grpc-js');
const {protos} = require('./proto');
const {floatTensor, boolTensor, fromTensor} = require('./tensors');
const {fromServiceError} = require('./errors');

const CAUSAL = {
  none: 'CAUSAL_NONE', upper_left: 'CAUSAL_UPPER_LEFT', lower_right: 'CAUSAL_LOWER_RIGHT',
};
const MAPS = {
  none: 'ATTENTION_MAPS_NONE', probabilities: 'ATTENTION_MAPS_PROBABILITIES',
  scores: 'ATTENTION_MAPS_SCORES', both: 'ATTENTION_MAPS_PROBABILITIES_AND_SCORES',
};

function pick(table, name, value) {
  if (!(value in table)) {
    throw new RangeError(`${name} must be one of ${Object.keys(table)}, not ${value}`);
  }
  return table[value];
}

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

  call(stub, method, request, timeoutMs) {
    const metadata = new grpc.Metadata();
    if (this.token) metadata.set('authorization', `Bearer ${this.token}`);
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
