// The safetensors reader (see safetensors.h). The JSON header is parsed with nlohmann-json.
#include "src/weights/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace attn {
namespace {

using nlohmann::json;

absl::StatusOr<DType> ParseDtype(const std::string& name, const std::string& dtype) {
  if (dtype == "F32") return DType::kFloat32;
  if (dtype == "BF16") return DType::kBFloat16;
  if (dtype == "F16") return DType::kFloat16;
  return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" has dtype ", dtype,
                                                 "; only F32, BF16 and F16 are supported"));
}

absl::StatusOr<SafetensorsTensor> ParseTensor(const std::string& name, const json& entry,
                                              int64_t data_size) {
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
      !entry.contains("data_offsets") || !entry["dtype"].is_string() ||
      !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
      entry["data_offsets"].size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor \"", name, "\" needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" "
        "([begin, end])"));
  }
  SafetensorsTensor tensor;
  absl::StatusOr<DType> dtype = ParseDtype(name, entry["dtype"].get<std::string>());
  if (!dtype.ok()) return dtype.status();
  tensor.dtype = *dtype;
  tensor.count = 1;
  for (const json& dim : entry["shape"]) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t{1} << 40)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", name, "\" has a shape entry ", dim.dump(),
                       " that is not an integer in [0, 2^40]"));
    }
    tensor.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    if (tensor.count > (int64_t{1} << 40) / std::max<int64_t>(1, tensor.shape.back())) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" is too large"));
    }
    tensor.count *= tensor.shape.back();
  }
  const json& offsets = entry["data_offsets"];
  if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", name, "\" has data_offsets that are not unsigned integers"));
  }
  const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  if (begin > end || end > static_cast<uint64_t>(data_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", name, "\" has data_offsets [", begin, ", ", end,
                     "] outside the ", data_size, " data bytes of the file"));
  }
  const uint64_t want = static_cast<uint64_t>(tensor.count * DTypeSize(tensor.dtype));
  if (end - begin != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", name, "\" has ", end - begin, " data bytes but its shape and dtype ",
                     entry["dtype"].get<std::string>(), " need ", want));
  }
  tensor.offset = static_cast<int64_t>(begin);
  return tensor;
}

}  // namespace

std::vector<float> SafetensorsFile::ToFloat(const SafetensorsTensor& tensor) const {
  std::vector<float> values(tensor.count);
  DecodeToFloat(tensor.dtype, bytes.data() + data_start + tensor.offset, tensor.count,
                values.data());
  return values;
}

absl::StatusOr<SafetensorsFile> ParseSafetensors(std::vector<uint8_t> bytes) {
  if (bytes.size() < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("the file has ", bytes.size(), " bytes; a safetensors file starts with an "
                     "8-byte header length"));
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > bytes.size() - 8) {
    return absl::InvalidArgumentError(absl::StrCat("the header length is ", header_size,
                                                   " bytes but only ", bytes.size() - 8,
                                                   " follow it (truncated file?)"));
  }
  const json header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_size, nullptr,
                                   /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::InvalidArgumentError("the header is not a JSON object");
  }
  SafetensorsFile file;
  file.data_start = static_cast<int64_t>(8 + header_size);
  const int64_t data_size = static_cast<int64_t>(bytes.size()) - file.data_start;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return absl::InvalidArgumentError("__metadata__ is not an object of strings");
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("__metadata__[\"", key, "\"] is not a string"));
        }
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    absl::StatusOr<SafetensorsTensor> tensor = ParseTensor(name, entry, data_size);
    if (!tensor.ok()) return tensor.status();
    file.tensors[name] = *std::move(tensor);
  }
  file.bytes = std::move(bytes);
  return file;
}

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path, int64_t max_bytes) {
  std::error_code error;
  const uintmax_t size = std::filesystem::file_size(path, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", error.message()));
  }
  if (size > static_cast<uintmax_t>(max_bytes)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, " has ", size, " bytes, over the limit of ", max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes(size);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  return ParseSafetensors(std::move(bytes));
}

}  // namespace attn
