// The client's error: a failed call keeps its gRPC status code and the server's message.
'use strict';
const {status} = require('@grpc/grpc-js');

const CODE_NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name]));

class AttnServeError extends Error {
  /** code: the numeric grpc status (grpc.status.*); codeName e.g. 'INVALID_ARGUMENT'. */
  constructor(code, details) {
    const codeName = CODE_NAMES[code] || `CODE_${code}`;
    super(`${codeName}: ${details}`);
    this.name = 'AttnServeError';
    this.code = code;
    this.codeName = codeName;
    this.details = details;
  }
}

/** The AttnServeError for a grpc-js ServiceError. */
function fromServiceError(error) {
  return new AttnServeError(error.code, error.details || '');
}

module.exports = {AttnServeError, fromServiceError};
