// gRPC server credentials from --tls_cert / --tls_key (TLS) and --tls_client_ca (mutual TLS:
// clients must present a certificate signed by that CA), or plaintext when none is set.
// Pure function; thread-safe.
#ifndef ATTNSERVE_SERVER_SERVER_CREDENTIALS_H_
#define ATTNSERVE_SERVER_SERVER_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"

namespace attn {

struct TlsFiles {
  std::string cert;       // PEM certificate chain of the server
  std::string key;        // PEM private key
  std::string client_ca;  // PEM CA that client certificates must chain to; "" = no mTLS
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_SERVER_CREDENTIALS_H_
