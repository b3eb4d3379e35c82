// `reel prepare`: decodes a dataset once into a pre-decoded store of resized uint8 frames, so that
// training epochs read memory-mapped frames instead of decoding videos.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "config.h"
#include "reel/core/error.h"
#include "reel/data/dataset.h"
#include "reel/data/store.h"

namespace reel::apps {

namespace {

struct PrepareArgs {
  std::string data, layout = "folder", list, out, on_bad = "skip", kinetics_split;
  int split = 1;
  bool test = false;
  int frames = 16, size = 128, workers = 0;
};

int run_prepare(const PrepareArgs& a) {
  data::DatasetOptions d;
  d.layout = data::parse_layout(a.layout);
  // A store keeps frames of whole videos, one clip each; ActivityNet's segments of long videos
  // are sampled from the videos themselves.
  if (d.layout == data::Layout::ActivityNet)
    throw UsageError(
        "--layout activitynet: a store holds whole short videos; train on "
        "ActivityNet's videos directly (reel train --layout activitynet)");
  d.root = a.data;
  d.list = a.list;
  d.split = a.split;
  d.train = !a.test;
  d.kinetics_split = a.kinetics_split;
  const data::Dataset ds = data::load_dataset(d);
  data::PrepareOptions o;
  o.frames = a.frames;
  o.size = a.size;
  o.on_bad = data::parse_on_bad_video(a.on_bad);
  o.workers = a.workers;
  std::printf(
      "reel prepare: %zu videos in %zu classes from %s (%s), %d frames per video, "
      "shorter side %d\n",
      ds.size(), ds.classes.size(), a.data.c_str(), a.layout.c_str(), a.frames, a.size);
  std::fflush(stdout);
  const data::PrepareSummary s = data::prepare_store(ds, a.out, o, &std::cerr);
  std::printf(
      "videos read: %lld, clips written: %lld (%lld frames, %.1f MiB), bad files skipped: "
      "%zu, in %.2f s (%.1f videos/s)\n",
      static_cast<long long>(s.videos), static_cast<long long>(s.written),
      static_cast<long long>(s.frames), s.bytes / 1048576.0, s.bad.size(), s.seconds,
      s.seconds > 0 ? s.videos / s.seconds : 0.0);
  for (const auto& bad : s.bad) std::printf("  skipped: %s\n", bad.second.c_str());
  std::printf("store: %s\n", a.out.c_str());
  return 0;
}

}  // namespace

Command add_prepare(CLI::App& app) {
  auto a = std::make_shared<PrepareArgs>();
  CLI::App* sub = app.add_subcommand(
      "prepare", "decode a dataset once into a pre-decoded store (memory-mapped on read)");
  sub->add_option("--data", a->data, "dataset root (the folder of class folders)")->required();
  sub->add_option("--layout", a->layout, "ucf101 | kinetics | folder | csv")
      ->check(CLI::IsMember({"ucf101", "kinetics", "folder", "csv"}));
  sub->add_option("--list", a->list,
                  "UCF101: folder of classInd.txt and the split lists; kinetics, csv: the CSV");
  sub->add_option("--split", a->split, "UCF101 split (trainlist0N / testlist0N)")
      ->check(CLI::Range(1, 99));
  sub->add_flag("--test", a->test, "UCF101: the test list; Kinetics: the val rows");
  sub->add_option("--kinetics-split", a->kinetics_split,
                  "Kinetics: rows whose split column is this ('all' for every row)");
  sub->add_option("--frames", a->frames, "frames kept per video, spread over it")
      ->check(CLI::PositiveNumber);
  sub->add_option("--size", a->size, "shorter side of the stored frames")
      ->check(CLI::PositiveNumber);
  sub->add_option("--out", a->out, "the store file to write")->required();
  sub->add_option("--on-bad-video", a->on_bad, "skip (log and count) or fail (stop, naming it)")
      ->check(CLI::IsMember({"skip", "fail"}));
  sub->add_option("--workers", a->workers, "decoding threads (default: the number of cores)")
      ->check(CLI::NonNegativeNumber);
  return [a] { return run_prepare(*a); };
}

}  // namespace reel::apps
