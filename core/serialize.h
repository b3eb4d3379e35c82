#pragma once
// safetensors files (the format of Hugging Face's safetensors): an 8-byte little-endian header
// length, a JSON header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}},
// then the raw data. PyTorch's state_dict keys go in unchanged, so that checkpoints move
// between reel and PyTorch without renaming.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "reel/core/tensor.h"

namespace reel {

using TensorMap = std::map<std::string, Tensor>;

// A file that appears complete under its name or not at all. Bytes go to "<path>.tmp";
// commit() flushes them to the disk (fsync), renames the file over `path` and syncs the folder,
// so that a crash or a full disk at any point leaves either the previous file or the new one.
// Destroyed without commit() (an error, an exception), it removes the temporary file. Every
// failure throws reel::Error naming the file (and saying "disk full" when it is).
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t bytes);
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// The whole of `bytes` as the file `path`, through an AtomicFile.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Writes every tensor (from any device) as F32, through an AtomicFile: the file appears
// complete or not at all. Throws reel::Error naming the file when it cannot be written.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor onto `device`, converting F64, F16, BF16, I64, I32, I16, I8, U8 and BOOL
// to float32. The file is untrusted input: every malformed file throws reel::Error naming the
// file (and the tensor, when the fault is in one), never crashes, and nothing is allocated
// beyond what the file's size justifies. Refused: a file that is missing, unreadable or
// truncated; a header length beyond the file or the format's 100 MB; a header that is not a
// JSON object or not valid JSON; duplicate keys; an entry without dtype, shape or data_offsets,
// or with another field; an unsupported dtype; extents that are not integers >= 0, a rank above
// kMaxDims, or a shape too large to address; data_offsets that are not two integers
// 0 <= begin <= end within the data, or whose size is not numel x dtype size; tensors whose
// data overlap, leave a hole or stop short of the end of the file; a `__metadata__` that is not
// an object of strings. `metadata`, when given, receives `__metadata__` (only on success).
TensorMap load_safetensors(const std::string& path, Device device = Device::cpu(),
                           std::map<std::string, std::string>* metadata = nullptr);

// The same reader over `size` bytes in memory (a whole safetensors file); `name` stands for
// the file in error messages.
TensorMap load_safetensors_from_memory(const void* data, size_t size, const std::string& name,
                                       Device device = Device::cpu(),
                                       std::map<std::string, std::string>* metadata = nullptr);

}  // namespace reel
