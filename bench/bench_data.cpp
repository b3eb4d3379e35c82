// BM_DecodeClips: clips per second decoded, sampled, transformed and batched by the loader, from
// real video files (1 and 2 workers) and from the pre-decoded store made of the same videos.
// Needs the media cache: scripts/fetch_test_media.sh (or $REEL_MEDIA_CACHE).
#include <benchmark/benchmark.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "reel/data/loader.h"
#include "reel/data/store.h"

namespace fs = std::filesystem;
using namespace reel::data;

namespace {

std::string media_dir() {
  if (const char* p = std::getenv("REEL_MEDIA_CACHE")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.cache/reel-media";
}

// 16 videos: real ones (H.264 320x240, MPEG-4 720x528, Cinepak 320x240) and ffmpeg-made ones
// (H.264, MJPEG, MPEG-4, Xvid, VP9 at 160x120), each twice.
Dataset bench_dataset() {
  const char* files[] = {"realshort.mp4",  "Megamind.avi",   "tree.avi",      "made_h264.mkv",
                         "made_mjpeg.avi", "made_mpeg4.avi", "made_xvid.avi", "made_vp9.webm"};
  Dataset ds;
  ds.classes = {"a", "b"};
  for (int rep = 0; rep < 2; ++rep)
    for (const char* f : files) {
      const std::string p = media_dir() + "/" + f;
      if (!fs::exists(p)) return Dataset();
      ds.items.push_back({p, static_cast<int64_t>(ds.items.size() % 2)});
    }
  return ds;
}

// The store is made once per process, outside the timing.
std::shared_ptr<const Store> bench_store(const Dataset& ds) {
  static std::shared_ptr<const Store> store;
  if (!store) {
    const std::string path =
        (fs::temp_directory_path() / ("reel_bench_" + std::to_string(::getpid()) + ".store"))
            .string();
    PrepareOptions po;
    po.frames = 16;
    po.size = 128;
    prepare_store(ds, path, po);
    store = Store::open(path);
    fs::remove(path);  // the mapping stays valid
  }
  return store;
}

void BM_DecodeClips(benchmark::State& state, bool from_store) {
  Dataset ds = bench_dataset();
  if (ds.items.empty()) {
    state.SkipWithError("media cache missing: run scripts/fetch_test_media.sh");
    return;
  }
  if (from_store) ds = Store::dataset(bench_store(ds));
  LoaderOptions o;
  o.workers = static_cast<int>(state.range(0));
  o.batch_size = 4;
  o.sampler.frames = 8;
  o.transform.resize = 128;
  o.transform.crop = 112;
  int64_t clips = 0, epoch = 0;
  Loader loader(ds, o);
  for (auto _ : state) {
    loader.start_epoch(epoch++);
    Batch b;
    while (loader.next(b)) {
      clips += static_cast<int64_t>(b.labels.size());
      benchmark::DoNotOptimize(b.clips.data());
    }
  }
  state.counters["clips/s"] =
      benchmark::Counter(static_cast<double>(clips), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_DecodeClips, files, false)
    ->ArgName("workers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DecodeClips, store, true)
    ->ArgName("workers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
