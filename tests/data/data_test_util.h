#pragma once
// Helpers for the data tests: scratch folders and the media cache.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "../test_util.h"
#include "reel/core/error.h"

namespace reel::test {

// A fresh folder under the system temp folder, removed with everything in it at scope exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() /
            ("reel_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// The folder scripts/fetch_test_media.sh fills (the CTest fixture `media` runs it first).
inline std::string media_dir() {
  if (const char* p = std::getenv("REEL_MEDIA_CACHE")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.cache/reel-media";
}

inline std::string media(const std::string& name) {
  const std::string p = media_dir() + "/" + name;
  INFO("media file " << p << " (run scripts/fetch_test_media.sh)");
  REQUIRE(std::filesystem::exists(p));
  return p;
}

}  // namespace reel::test
