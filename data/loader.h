#pragma once
// The prefetching loader: worker threads decode, sample and transform clips into batches ahead
// of the trainer, through a bounded window of batches. Every random choice of a clip comes from
// a generator seeded with (seed, epoch, sample), and the order of an epoch from (seed, epoch), so
// the batches are the same whatever the number of workers.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "reel/core/device.h"
#include "reel/core/tensor.h"
#include "reel/data/clip.h"
#include "reel/data/dataset.h"
#include "reel/data/video.h"

namespace reel::data {

struct LoaderOptions {
  int batch_size = 8;
  int workers = 0;   // decoding threads; 0: the number of cores
  int prefetch = 0;  // batches built ahead of the trainer (the bounded queue); 0: 2 per worker
  bool shuffle = true;
  bool drop_last = false;
  // Training: random frames in each segment, random crop and flip. Evaluation: centred frames
  // and crop, sampler.clips_per_video clips per video, one after another in the epoch.
  bool train = true;
  uint64_t seed = 0;
  SamplerOptions sampler;
  TransformOptions transform;  // transform.crop must be positive: batches need one size
  OnBadVideo on_bad = OnBadVideo::Skip;
  // Batches are moved there before next() returns them. For a GPU, workers build each batch in
  // pinned host memory and next() queues an asynchronous copy (Tensor::to(device, true)):
  // the trainer's next kernels on that device are ordered after it, and the pinned block is
  // not reused before the copy has finished.
  Device device = Device::cpu();
  std::ostream* log = nullptr;  // where skipped videos are named (once each); nullptr: stderr
  // Data-parallel training: this loader is rank `shard` of `shards`. The epoch's order is the
  // one a single loader would use, cut into global batches of shards * batch_size samples; each
  // rank delivers its part of every global batch (batch_size samples; the last global batch is
  // split as evenly as it goes, and a remainder of fewer samples than ranks is left out so that
  // every rank has a part). So N ranks with batch b see what one loader with batch N * b sees,
  // with the same random choices per sample.
  int shard = 0, shards = 1;
};

struct Batch {
  Tensor clips;                    // [B, T, 3, H, W] float, normalised RGB
  std::vector<int64_t> lengths;    // [B] real frames per clip (the rest looped or zero)
  std::vector<int64_t> labels;     // [B]
  std::vector<int64_t> videos;     // [B] dataset index of each clip's video
  std::vector<int> clip_indices;   // [B] which of the video's evaluation clips (0 in training)
  std::vector<std::string> paths;  // [B]
  int64_t index = 0;               // batch number within the epoch
};

struct EpochSummary {
  int64_t batches = 0, clips = 0;
  std::vector<std::string> bad;  // files skipped in this epoch, in the order met
};

class Loader {
 public:
  Loader(Dataset dataset, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const Dataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return opts_; }
  // Clips in one epoch, over all shards: videos (training) or videos * clips_per_video
  // (evaluation).
  int64_t samples() const;
  int64_t batches_per_epoch() const;

  // Starts the workers on an epoch (stopping any epoch still running), from its batch
  // first_batch on: the batches are those a start at 0 would deliver from there (a resumed
  // run's data position).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch; false at its end. A batch holds fewer clips than batch_size
  // when it is the last (without drop_last) or when bad videos were skipped; a batch whose
  // clips were all bad is skipped, except by a shard (shards > 1), which returns it with no
  // clip (clips [0, T, 3, H, W]). Throws reel::Error
  // naming the file for a bad video under OnBadVideo::Fail.
  bool next(Batch& batch);
  // What the current (or last) epoch has delivered so far.
  EpochSummary summary() const;
  // Clips of this epoch (from its first batch) that workers have taken up so far (delivered, built
  // or being built): never more than (batches delivered + prefetch) * batch_size.
  int64_t clips_started() const;

 private:
  struct Pending {
    Tensor clips;
    std::vector<int64_t> lengths, labels, videos;
    std::vector<int> clip_indices;
    std::vector<std::string> errors;  // per slot; non-empty: the video was bad
    int size = 0, done = 0;
  };
  void worker();
  void produce(int64_t position, Pending& p, int slot);
  void stop_workers();

  Dataset dataset_;
  LoaderOptions opts_;
  int workers_ = 1;
  int prefetch_ = 2;
  int64_t clip_numel_ = 0;                    // T * 3 * H * W
  std::vector<std::atomic<int64_t>> counts_;  // true frame count per video, 0 until known

  mutable std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<std::thread> threads_;
  std::vector<int64_t> order_;  // the epoch's samples in order
  std::map<int64_t, Pending> pending_;
  int64_t epoch_ = -1, start_pos_ = 0, end_pos_ = 0, next_pos_ = 0, next_batch_ = 0;
  bool stop_ = false;
  std::string fatal_;  // set by a worker when the epoch cannot go on
  std::set<std::string> logged_;
  EpochSummary summary_;
};

// The seed of a sample's generator, from (seed, epoch, sample): splitmix64 over the three.
uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t sample, uint64_t stream = 0);

}  // namespace reel::data
