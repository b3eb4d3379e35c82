// Replays every file of tests/fuzz/corpus_safetensors (the fuzzer's seeds and the inputs it once
// found crashing) through the safetensors reader, from the file and from memory. Each must load
// or throw reel::Error whose message names the file and holds what corpus_safetensors.expect
// says (the tensor at fault and what is wrong with it). Under the ASan + UBSan build this is
// also the fuzzer's regression run.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "reel/core/reel.h"

namespace {

namespace fs = std::filesystem;

// file name -> fragments its error must contain; {"OK"} when it must load.
std::map<std::string, std::vector<std::string>> read_manifest(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::map<std::string, std::vector<std::string>> manifest;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string f; std::getline(ss, f, '\t');) fields.push_back(f);
    REQUIRE(fields.size() >= 2);
    manifest[fields[0]] = std::vector<std::string>(fields.begin() + 1, fields.end());
  }
  return manifest;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Loads through `load`; checks it loads, or throws reel::Error naming `name` and every fragment.
void check(const std::function<reel::TensorMap()>& load, const std::string& name,
           const std::vector<std::string>& expect) {
  std::string message;
  bool loaded = false;
  try {
    const reel::TensorMap m = load();
    loaded = true;
  } catch (const reel::Error& e) {
    message = e.what();
  }
  INFO("message: " << message);
  if (expect == std::vector<std::string>{"OK"}) {
    CHECK(loaded);
    return;
  }
  CHECK_FALSE(loaded);
  CHECK(message.find(name) != std::string::npos);
  for (const std::string& fragment : expect) {
    INFO("expected fragment: " << fragment);
    CHECK(message.find(fragment) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("every corpus file loads or is refused by a reel::Error naming the file and the fault") {
  const auto manifest = read_manifest(REEL_CORPUS_DIR ".expect");
  size_t replayed = 0;
  for (const auto& item : fs::directory_iterator(REEL_CORPUS_DIR)) {
    const std::string file = item.path().filename().string();
    const std::string path = item.path().string();
    INFO("corpus file: " << file);
    const auto it = manifest.find(file);
    REQUIRE_MESSAGE(it != manifest.end(), "not in the manifest (rerun make_corpus.py)");
    const std::string bytes = read_bytes(path);
    CHECK(bytes.size() <= 4096);  // the corpus stays tiny
    check([&] { return reel::load_safetensors(path); }, path, it->second);
    const std::string name = "corpus:" + file;
    check([&] { return reel::load_safetensors_from_memory(bytes.data(), bytes.size(), name); },
          name, it->second);
    ++replayed;
  }
  CHECK(replayed == manifest.size());  // no manifest line without its file
  CHECK(replayed >= 40);
}
