#pragma once
// The pre-decoded store: one file of resized uint8 frames written once by `reel prepare` and
// memory-mapped on read, so that training epochs skip decoding.
//
// Layout (version 1, little-endian):
//   [0, 64)        header: "REELSTOR", u32 version, u32 0, u64 index offset, u64 index bytes,
//                  u64 videos, zeros
//   [64, index)    per video: [frames, H, W, 3] uint8 BGR, each starting on a 64-byte boundary
//   [index, end)   u32 classes, per class (u32 length, bytes); per video: u64 offset,
//                  u32 frames, u32 H, u32 W, u32 0, i64 label, i64 frames in the source,
//                  (u32 length, bytes) source path
// The writer fills "<path>.part" and renames it at the end, so an interrupted run leaves no
// half-written store under the real name.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "reel/data/dataset.h"
#include "reel/data/video.h"

namespace reel::data {

struct StoredVideo {
  uint64_t offset = 0;  // of the first frame's bytes in the file
  int64_t frames = 0, height = 0, width = 0;
  int64_t label = 0;
  int64_t source_frames = 0;  // frames in the decoded video (the true count)
  std::string path;           // the source video
};

class Store {
 public:
  // Maps the file; throws reel::Error naming it when it is missing, not a store, of another
  // version or cut short.
  static std::shared_ptr<Store> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<std::string>& classes() const { return classes_; }
  size_t size() const { return videos_.size(); }
  const StoredVideo& video(size_t i) const { return videos_.at(i); }
  // A read-only view into the mapping ([H, W, 3] uint8 BGR); valid while the Store lives.
  cv::Mat frame(size_t video, int64_t t) const;
  // A Dataset over this store (each item's path is its source's, for messages).
  static Dataset dataset(const std::shared_ptr<const Store>& store);

 private:
  Store() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<std::string> classes_;
  std::vector<StoredVideo> videos_;
};

// A FrameSource over one video of a store: no decoding, frames are views into the mapping.
std::unique_ptr<FrameSource> open_stored(const std::shared_ptr<const Store>& store, size_t video);

class StoreWriter {
 public:
  StoreWriter(const std::string& path, std::vector<std::string> classes);
  // Removes the temporary file unless finish() ran.
  ~StoreWriter();
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // Thread-safe. frames: the video's frames, all of one size, BGR uint8. The store lists videos
  // by `order` (e.g. the dataset index), whatever order they were added in.
  void add(int64_t order, const std::string& source_path, int64_t label, int64_t source_frames,
           const std::vector<cv::Mat>& frames);
  // Writes the index and renames the file to its real name.
  void finish();
  // True after a write failed (disk full, say): the file is unusable, and add() and finish()
  // throw from then on.
  bool broken() const;

 private:
  std::string path_, part_;
  std::FILE* file_ = nullptr;
  uint64_t end_ = 0;
  std::vector<std::string> classes_;
  std::vector<std::pair<int64_t, StoredVideo>> videos_;
  mutable std::mutex mu_;
  bool finished_ = false;
  bool broken_ = false;
};

struct PrepareOptions {
  int frames = 16;  // frames kept per video, spread uniformly over it (all of a shorter video)
  int size = 128;   // shorter side after resizing
  OnBadVideo on_bad = OnBadVideo::Skip;
  int workers = 0;  // decoding threads; 0: the number of cores
};

struct PrepareSummary {
  int64_t videos = 0;   // videos in the dataset
  int64_t written = 0;  // videos (clips) written to the store
  int64_t frames = 0;   // frames written
  uint64_t bytes = 0;   // size of the store file
  // (file, why) for each video skipped, in dataset order; `why` names the file.
  std::vector<std::pair<std::string, std::string>> bad;
  double seconds = 0.0;
};

// Decodes every video of the dataset once into a store at `out`. With OnBadVideo::Fail the first
// bad video (in dataset order) stops it with its name and no store is left; with Skip each bad
// one is written to `log` once and listed in the summary.
PrepareSummary prepare_store(const Dataset& dataset, const std::string& out,
                             const PrepareOptions& options, std::ostream* log = nullptr);

}  // namespace reel::data
