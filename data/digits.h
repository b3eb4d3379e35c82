#pragma once
// Moving digits: real handwritten digits (OpenCV's digits.png) on a black square, moving down or
// up, or growing or shrinking. The class is the direction, so the order of the frames decides
// it: a clip played backwards runs the other way and carries the other class of its pair. Every
// test clip comes with its time-reversed twin, so a model blind to the order of frames is at
// chance on those pairs. No class moves sideways, so a horizontal flip keeps every label.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "reel/core/tensor.h"

namespace reel::data {

struct DigitImages {
  std::vector<cv::Mat> images;  // each [20, 20] uint8 (CV_8UC1), white on black
  std::vector<int> digits;      // 0..9 per image
};

// OpenCV's samples/data/digits.png: a 2000x1000 sheet of 5000 digits, 20x20 each, 500 per digit
// (digit d in rows 5d..5d+4 of 20-pixel cells). Throws reel::Error naming the file.
DigitImages load_digits_png(const std::string& path);
// Where digits.png is: $REEL_DIGITS_PNG, $REEL_MEDIA_CACHE/digits.png,
// ~/.cache/reel-media/digits.png (scripts/fetch_test_media.sh puts it there), then opencv-doc's
// /usr/share/doc/opencv-doc/examples/data/digits.png. Throws naming the places tried.
std::string find_digits_png();

// "MoveDown", "MoveUp", "ZoomIn", "ZoomOut": class c and c ^ 1 are each other's reversal.
const std::vector<std::string>& digit_classes();

struct DigitsOptions {
  int frames = 16;  // T
  int size = 64;    // frames are size x size
  uint64_t seed = 0;
  // The share of each class's images that go to training; the rest are the test digits, so
  // no handwritten digit is in both sets.
  double train_share = 0.8;
};

struct DigitClips {
  Tensor clips;                 // [N, T, 1, S, S] float in [0, 1]
  std::vector<int64_t> labels;  // [N] index into digit_classes()
  std::vector<int> digits;      // [N] the digit shown (not the label)
};

// count clips. Training: independent clips, classes in turn. Test (count even): clips 2i and
// 2i + 1 are one clip and its time reversal, with opposite labels. Same seed, same clips.
// first: the index of the first clip, so that a large set can be made in pieces (even for
// test); clip i is the same whichever piece makes it.
DigitClips make_moving_digits(const DigitImages& digits, int count, bool test,
                              const DigitsOptions& options, int first = 0);

struct DigitsWritten {
  int64_t train = 0, test = 0;
  std::string root;
};
// Writes the set as MJPEG .avi files in UCF101's layout: out/<Class>/v_<Class>_gNN_cNNNN.avi,
// out/classInd.txt, out/trainlist01.txt and out/testlist01.txt (twins on adjacent lines).
DigitsWritten write_moving_digits(const DigitImages& digits, const std::string& out, int train,
                                  int test, const DigitsOptions& options);

}  // namespace reel::data
