#pragma once
// safetensors files (the format of Hugging Face's safetensors): an 8-byte little-endian header
// length, a JSON header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}},
// then the raw data. PyTorch's state_dict keys go in unchanged, so that checkpoints move
// between reel and PyTorch without renaming.
#include <map>
#include <string>

#include "reel/core/tensor.h"

namespace reel {

using TensorMap = std::map<std::string, Tensor>;

// Writes every tensor (from any device) as F32. The file appears complete or not at all: it is
// written to `path.tmp` and renamed. Throws reel::Error naming the file when it cannot be written.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor onto `device`, converting F64, F16, BF16, I64, I32, I16, I8, U8 and BOOL
// to float32. Throws reel::Error naming the file (and the tensor) when it is missing,
// truncated, not safetensors, or holds an unsupported dtype.
TensorMap load_safetensors(const std::string& path, Device device = Device::cpu(),
                           std::map<std::string, std::string>* metadata = nullptr);

}  // namespace reel
