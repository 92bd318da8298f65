// attnserve-client: the Node client of attnserve (Float32Array in, Float32Array out).
'use strict';
const {AttentionClient} = require('./client');
const {AttnServeError} = require('./errors');
const {Session} = require('./session');

module.exports = {AttentionClient, AttnServeError, Session};
