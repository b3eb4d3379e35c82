#pragma once
// Frame sources: a video file decoded through OpenCV's FFmpeg back end, or a folder of JPEG/PNG
// frames read with stb_image in name order. Every frame handed out is a cv::Mat of CV_8UC3 in
// OpenCV's BGR order; the transforms turn it into RGB floats.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace reel::data {

// Silences OpenCV's own logging (and so GStreamer's and FFmpeg's messages through it) and gives
// each FFmpeg decoder one thread (unless OPENCV_FFMPEG_CAPTURE_OPTIONS is set). Called by every
// reader, the loader and prepare before their threads start; safe to call again.
void quiet_opencv();

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The number of frames as the container states it; may be wrong (see read()).
  virtual int64_t frame_count() const = 0;
  virtual double fps() const = 0;
  virtual const std::string& path() const = 0;
  // Decodes the frames at `indices` (sorted ascending, repeats allowed), reading sequentially up
  // to the last one and keeping only those asked for. Returns fewer frames than asked when the
  // stream ends early; then *true_count (when given) is set to the frames actually there.
  // Throws reel::Error naming the file when it cannot be decoded at all.
  virtual std::vector<cv::Mat> read(const std::vector<int64_t>& indices,
                                    int64_t* true_count = nullptr) = 0;
};

// Opens a video file. Throws reel::Error naming the file when it is missing or not a video.
std::unique_ptr<FrameSource> open_video(const std::string& path);
// Opens a folder of frames (*.jpg, *.jpeg, *.png), ordered by name with digit runs compared as
// numbers (frame_2 before frame_10). Throws when the folder holds no frame.
std::unique_ptr<FrameSource> open_frame_folder(const std::string& path, double fps = 25.0);
// A folder becomes a frame folder, anything else a video.
std::unique_ptr<FrameSource> open_source(const std::string& path);

// The exact number of frames, by decoding to the end (the stated count can be wrong).
int64_t count_frames(FrameSource& source);

// Decodes the frames that pick(n) chooses for a video of n frames (indices in any order, -1 for
// a padding frame, which comes back as an empty Mat). n is the stated count; when pick(n) asks
// for a frame past the real end of the stream (the stated count was too high), or no count is
// stated, pick() is asked again with the true count. So the frames chosen depend only on pick
// and the file. known_true_count (0: unknown) is a true count an earlier call reported through
// *true_count_out: it only spares decoding to the end again, never changes the choice.
// *count_out gets the n used. Throws reel::Error naming the file when it has no frame or
// cannot be decoded.
std::vector<cv::Mat> decode_frames(FrameSource& source,
                                   const std::function<std::vector<int64_t>(int64_t)>& pick,
                                   int64_t known_true_count = 0, int64_t* count_out = nullptr,
                                   int64_t* true_count_out = nullptr);

// What to do with a video that cannot be read: skip it (logged once, counted in the summary)
// or stop with its name.
enum class OnBadVideo { Skip, Fail };
OnBadVideo parse_on_bad_video(const std::string& name);  // "skip" | "fail"

// msg when it names path already, else "'path': msg": every report names the file once.
std::string naming(const std::string& path, const std::string& msg);

// "frame_2.png" < "frame_10.png": digit runs compare by value.
bool natural_less(const std::string& a, const std::string& b);

}  // namespace reel::data
