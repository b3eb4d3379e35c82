// `reel digits`: writes the moving-digits set (real handwritten digits moving down or up, or
// zooming in or out: the direction is the class) as video files in UCF101's layout, so that the
// whole pipeline runs on it.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "reel/core/error.h"
#include "reel/data/digits.h"

namespace reel::apps {

namespace {

struct DigitsArgs {
  std::string out, digits_png;
  int train = 1000, test = 200, frames = 16, size = 64;
  uint64_t seed = 0;
};

int run_digits(const DigitsArgs& a) {
  REEL_CHECK(a.test % 2 == 0, "digits: --test must be even (each test clip has a reversed twin)");
  const std::string png = a.digits_png.empty() ? data::find_digits_png() : a.digits_png;
  const data::DigitImages images = data::load_digits_png(png);
  data::DigitsOptions o;
  o.frames = a.frames;
  o.size = a.size;
  o.seed = a.seed;
  const auto t0 = std::chrono::steady_clock::now();
  const data::DigitsWritten w = data::write_moving_digits(images, a.out, a.train, a.test, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "reel digits: %lld training and %lld test clips (%d frames of %dx%d, MJPEG .avi) "
      "in %.2f s\n",
      static_cast<long long>(w.train), static_cast<long long>(w.test), a.frames, a.size, a.size,
      secs);
  std::printf("classes:");
  for (const auto& c : data::digit_classes()) std::printf(" %s", c.c_str());
  std::printf("\ndigits from %s\nwritten to %s (classInd.txt, trainlist01.txt, testlist01.txt)\n",
              png.c_str(), w.root.c_str());
  return 0;
}

}  // namespace

Command add_digits(CLI::App& app) {
  auto a = std::make_shared<DigitsArgs>();
  CLI::App* sub = app.add_subcommand(
      "digits", "write the moving-digits set (class = direction in time) as UCF101-style videos");
  sub->add_option("--out", a->out, "output folder")->required();
  sub->add_option("--train", a->train, "training clips")->check(CLI::NonNegativeNumber);
  sub->add_option("--test", a->test, "test clips (even: clip + reversed twin)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--frames", a->frames, "frames per clip")->check(CLI::Range(2, 1000));
  sub->add_option("--size", a->size, "frame side in pixels")->check(CLI::Range(8, 4096));
  sub->add_option("--seed", a->seed, "random seed");
  sub->add_option("--digits-png", a->digits_png,
                  "OpenCV's digits.png (default: searched, see scripts/fetch_test_media.sh)");
  return [a] { return run_digits(*a); };
}

}  // namespace reel::apps
